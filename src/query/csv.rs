//! CSV output for the `s62 query` reports (RFC 4180): one record per line, a cell quoted when it
//! holds a comma, a quote or a line break, quotes doubled.
//!
//! Cells come from the log (subject ids, route names, actor ids), that is from whoever used the
//! records system, and a DPO opens the file in a spreadsheet: a text cell that a spreadsheet would
//! run as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) is written with
//! a leading `'` (the OWASP advice against CSV injection). Pure: no I/O; must not import the
//! client, the server or the store.

/// One CSV record, without the line ending.
pub fn record<S: AsRef<str>>(cells: &[S]) -> String {
    cells
        .iter()
        .map(|c| cell(c.as_ref()))
        .collect::<Vec<_>>()
        .join(",")
}

fn cell(text: &str) -> String {
    let guarded = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_cells_stay_as_they_are_and_awkward_ones_are_quoted() {
        assert_eq!(record(&["subject", "P-1", "3"]), "subject,P-1,3");
        assert_eq!(
            record(&["a,b", "say \"hi\"", "two\nlines", ""]),
            "\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\","
        );
    }

    #[test]
    fn a_cell_a_spreadsheet_would_run_as_a_formula_is_defused() {
        assert_eq!(
            record(&["=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)"]),
            "\"'=HYPERLINK(\"\"http://x\"\")\",'+1,'-2,'@SUM(A1)"
        );
    }
}
