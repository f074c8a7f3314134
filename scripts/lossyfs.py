#!/usr/bin/python3
"""lossyfs: a FUSE file system that loses what was not fsync'd when the power goes.

    /usr/bin/python3 scripts/lossyfs.py BACKING MOUNTPOINT

Files live in BACKING, which plays the disk. Writes, truncations and allocations through
MOUNTPOINT are held in memory (the "page cache") and reach BACKING only when the file is
fsync'd or fdatasync'd. Creating, renaming and removing files reach BACKING at once (a generous
model: real file systems need a directory fsync for that). Reads see the in-memory state, as a
program on a running machine would.

Power loss: kill this process with SIGKILL and detach the mount (`fusermount3 -u -z MOUNTPOINT`,
or `umount -l`). BACKING then holds exactly what was synced. The durability test
(tests/durability_power_loss.rs) runs the log writer on MOUNTPOINT, cuts the power, and opens
BACKING: every entry the writer acknowledged must be there.

Needs Debian's python3-fusepy (module `fusepy`, which uses libfuse2) and /dev/fuse; run as root.
"""

import errno
import os
import sys
import threading

from fusepy import FUSE, FuseOSError, Operations


class Volatile:
    """The unsynced state of one file: its full current content and which ranges are dirty."""

    def __init__(self, content):
        self.data = bytearray(content)
        self.dirty = []  # (offset, length) ranges written since the last sync
        self.resized = False


class LossyFS(Operations):
    def __init__(self, backing):
        self.backing = os.path.realpath(backing)
        self.cache = {}  # path -> Volatile
        self.mutex = threading.RLock()

    def _real(self, path):
        return os.path.join(self.backing, path.lstrip("/"))

    def _volatile(self, path):
        v = self.cache.get(path)
        if v is None:
            with open(self._real(path), "rb") as f:
                v = Volatile(f.read())
            self.cache[path] = v
        return v

    # -- metadata -------------------------------------------------------------------------

    def getattr(self, path, fh=None):
        with self.mutex:
            try:
                st = os.lstat(self._real(path))
            except OSError as e:
                raise FuseOSError(e.errno)
            attrs = {
                key: getattr(st, key)
                for key in (
                    "st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime",
                    "st_nlink", "st_size", "st_uid",
                )
            }
            v = self.cache.get(path)
            if v is not None:
                attrs["st_size"] = len(v.data)
            return attrs

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._real(path))

    def access(self, path, mode):
        if not os.access(self._real(path), mode):
            raise FuseOSError(errno.EACCES)

    def chmod(self, path, mode):
        os.chmod(self._real(path), mode)

    def chown(self, path, uid, gid):
        os.chown(self._real(path), uid, gid)

    def mkdir(self, path, mode):
        os.mkdir(self._real(path), mode)

    def rmdir(self, path):
        os.rmdir(self._real(path))

    def unlink(self, path):
        with self.mutex:
            os.unlink(self._real(path))
            self.cache.pop(path, None)

    def rename(self, old, new):
        with self.mutex:
            os.rename(self._real(old), self._real(new))
            v = self.cache.pop(old, None)
            self.cache.pop(new, None)
            if v is not None:
                self.cache[new] = v

    def link(self, target, name):
        os.link(self._real(name), self._real(target))

    def utimens(self, path, times=None):
        os.utime(self._real(path), times)

    def statfs(self, path):
        st = os.statvfs(self._real(path))
        return {
            key: getattr(st, key)
            for key in (
                "f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail",
                "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax",
            )
        }

    # -- data -----------------------------------------------------------------------------

    def create(self, path, mode, fi=None):
        with self.mutex:
            fd = os.open(self._real(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            os.close(fd)
            self.cache[path] = Volatile(b"")
            return 0

    def open(self, path, flags):
        with self.mutex:
            if flags & os.O_TRUNC:
                v = self._volatile(path)
                v.data = bytearray()
                v.resized = True
            return 0

    def read(self, path, size, offset, fh):
        with self.mutex:
            v = self.cache.get(path)
            if v is not None:
                return bytes(v.data[offset:offset + size])
            with open(self._real(path), "rb") as f:
                f.seek(offset)
                return f.read(size)

    def write(self, path, data, offset, fh):
        with self.mutex:
            v = self._volatile(path)
            end = offset + len(data)
            if end > len(v.data):
                v.data.extend(b"\0" * (end - len(v.data)))
            v.data[offset:end] = data
            v.dirty.append((offset, len(data)))
            return len(data)

    def truncate(self, path, length, fh=None):
        with self.mutex:
            v = self._volatile(path)
            if length < len(v.data):
                del v.data[length:]
            else:
                v.data.extend(b"\0" * (length - len(v.data)))
            v.resized = True

    def fallocate(self, path, mode, offset, length, fh):
        # FALLOC_FL_KEEP_SIZE (1): reserve space only. Otherwise grow the file, volatile.
        with self.mutex:
            if mode & 1:
                return 0
            v = self._volatile(path)
            if offset + length > len(v.data):
                v.data.extend(b"\0" * (offset + length - len(v.data)))
                v.resized = True
            return 0

    def fsync(self, path, datasync, fh):
        with self.mutex:
            v = self.cache.get(path)
            if v is None or (not v.dirty and not v.resized):
                return 0
            fd = os.open(self._real(path), os.O_WRONLY)
            try:
                for offset, length in v.dirty:
                    os.pwrite(fd, bytes(v.data[offset:offset + length]), offset)
                os.ftruncate(fd, len(v.data))
                os.fsync(fd)
            finally:
                os.close(fd)
            v.dirty = []
            v.resized = False
            return 0

    def fsyncdir(self, path, datasync, fh):
        return 0

    def flush(self, path, fh):
        # close() does not make data durable.
        return 0

    def release(self, path, fh):
        return 0


def main():
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        sys.exit(2)
    backing, mountpoint = sys.argv[1], sys.argv[2]
    FUSE(LossyFS(backing), mountpoint, foreground=True, nothreads=False, allow_other=False)


if __name__ == "__main__":
    main()
