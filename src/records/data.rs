//! The fictional records the demo service starts with: people, objects, locations and events of a
//! small English police area. Every name, date, address and registration here is invented.
//!
//! Pure data; no I/O.

use super::{Kind, Record};
use serde_json::json;

/// The seed records, in id order within each kind.
pub(super) fn seed() -> Vec<Record> {
    let mut out = Vec::new();
    let people = [
        (
            "P-1001",
            "Daniel",
            "Whitcombe",
            "1987-03-14",
            "L-3001",
            "Suspect; two previous for burglary",
        ),
        (
            "P-1002",
            "Aisha",
            "Rahman",
            "1992-11-02",
            "L-3002",
            "Victim of theft from vehicle",
        ),
        (
            "P-1003",
            "Gareth",
            "Llewellyn",
            "1975-06-21",
            "L-3003",
            "Witness to the Marsh Lane burglary",
        ),
        (
            "P-1004",
            "Chloe",
            "Barnard",
            "2001-01-30",
            "L-3004",
            "Missing-person report, since found",
        ),
        (
            "P-1005",
            "Tomasz",
            "Nowak",
            "1983-09-09",
            "L-3005",
            "Registered keeper of Ford Transit",
        ),
        (
            "P-1006",
            "Priya",
            "Chauhan",
            "1996-04-17",
            "L-3002",
            "Complainant, harassment",
        ),
        (
            "P-1007",
            "Liam",
            "O'Sullivan",
            "1990-12-05",
            "L-3006",
            "Subject of a bail condition",
        ),
        (
            "P-1008",
            "Margaret",
            "Hughes",
            "1948-08-23",
            "L-3003",
            "Victim of doorstep fraud",
        ),
        (
            "P-1009",
            "Kwame",
            "Mensah",
            "1979-02-11",
            "L-3007",
            "Witness, road traffic collision",
        ),
        (
            "P-1010",
            "Sophie",
            "Whitcombe",
            "1989-07-19",
            "L-3001",
            "Partner of P-1001; no record",
        ),
        (
            "P-1011",
            "Dan",
            "Whitcombe",
            "1987-03-14",
            "L-3008",
            "Probable duplicate of P-1001",
        ),
        (
            "P-1012",
            "Ellie",
            "Marsh",
            "2005-10-28",
            "L-3004",
            "Youth; referral to youth offending team",
        ),
    ];
    for (id, given, family, dob, address, note) in people {
        out.push(Record::new(
            Kind::Person,
            id,
            vec![id.to_owned()],
            json!({
                "given_name": given,
                "family_name": family,
                "date_of_birth": dob,
                "address_id": address,
                "note": note,
            }),
        ));
    }
    let objects = [
        (
            "O-2001",
            "vehicle",
            "Ford Transit, white, WX19 KLM",
            vec!["P-1005", "P-1001"],
        ),
        (
            "O-2002",
            "phone",
            "Samsung handset, cracked screen, IMEI ending 4471",
            vec!["P-1001"],
        ),
        (
            "O-2003",
            "property",
            "Trek mountain bike, frame BK772019",
            vec!["P-1002"],
        ),
        (
            "O-2004",
            "weapon",
            "Kitchen knife, 20 cm blade, recovered",
            vec!["P-1007"],
        ),
        (
            "O-2005",
            "vehicle",
            "Vauxhall Corsa, silver, LB64 RTY",
            vec!["P-1002"],
        ),
        (
            "O-2006",
            "document",
            "Forged bank letter, exhibit MH/1",
            vec!["P-1008"],
        ),
    ];
    for (id, category, description, subjects) in objects {
        out.push(Record::new(
            Kind::Object,
            id,
            strings(&subjects),
            json!({ "category": category, "description": description }),
        ));
    }
    let locations = [
        (
            "L-3001",
            "14 Marsh Lane, Eastleigh",
            "SO50 4GH",
            vec!["P-1001", "P-1010"],
        ),
        (
            "L-3002",
            "Flat 3, 27 Portswood Road, Southampton",
            "SO17 2ES",
            vec!["P-1002", "P-1006"],
        ),
        (
            "L-3003",
            "2 Chapel Row, Romsey",
            "SO51 8AA",
            vec!["P-1003", "P-1008"],
        ),
        (
            "L-3004",
            "9 Orchard Close, Totton",
            "SO40 3PL",
            vec!["P-1004", "P-1012"],
        ),
        (
            "L-3005",
            "Unit 6, Westside Trading Estate, Southampton",
            "SO15 0LN",
            vec!["P-1005"],
        ),
        (
            "L-3006",
            "41 Victoria Street, Winchester",
            "SO23 8DN",
            vec!["P-1007"],
        ),
        (
            "L-3007",
            "A27 near Chilworth roundabout",
            "SO16 7JF",
            vec!["P-1009"],
        ),
        (
            "L-3008",
            "Room 12, 5 Station Hill, Eastleigh",
            "SO50 9HL",
            vec!["P-1011"],
        ),
    ];
    for (id, address, postcode, subjects) in locations {
        out.push(Record::new(
            Kind::Location,
            id,
            strings(&subjects),
            json!({ "address": address, "postcode": postcode }),
        ));
    }
    let events = [
        (
            "E-4001",
            "burglary",
            "2026-10-03T02:40:00Z",
            "L-3001",
            "44260103-0112",
            vec!["P-1001", "P-1003"],
        ),
        (
            "E-4002",
            "theft_from_vehicle",
            "2026-10-11T19:05:00Z",
            "L-3002",
            "44261011-0877",
            vec!["P-1002", "P-1005"],
        ),
        (
            "E-4003",
            "harassment",
            "2026-10-19T08:30:00Z",
            "L-3002",
            "44261019-0243",
            vec!["P-1006", "P-1007"],
        ),
        (
            "E-4004",
            "fraud",
            "2026-11-02T14:15:00Z",
            "L-3003",
            "44261102-0501",
            vec!["P-1008"],
        ),
        (
            "E-4005",
            "missing_person",
            "2026-11-07T21:50:00Z",
            "L-3004",
            "44261107-1120",
            vec!["P-1004"],
        ),
        (
            "E-4006",
            "road_traffic_collision",
            "2026-11-15T07:55:00Z",
            "L-3007",
            "44261115-0090",
            vec!["P-1009"],
        ),
    ];
    for (id, category, when, location, occurrence, subjects) in events {
        out.push(Record::new(
            Kind::Event,
            id,
            strings(&subjects),
            json!({
                "category": category,
                "occurred_at": when,
                "location_id": location,
                "occurrence_number": occurrence,
            }),
        ));
    }
    out
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}
