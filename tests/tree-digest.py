#!/usr/bin/env python3
"""tree-digest DIR...: one digest line per entry of each tree below DIR
(argument index and relative path, type, mode, owner, size, mtime, atime of entries other than directories and symlinks,
rdev, symlink target, xattrs, content hash, hard-link group), then the
SHA-256 of it all on the last line.  Never follows a symlink and never
crosses into another mount.  Every entry is lstat'ed before any content
is read (reads may move atimes)."""
import hashlib
import os
import stat
import sys


def entries(top):
    dev = os.lstat(top).st_dev
    out = []
    stack = [""]
    while stack:
        rel = stack.pop()
        path = os.path.join(top, rel) if rel else top
        st = os.lstat(path)
        out.append((rel or ".", path, st))
        if stat.S_ISDIR(st.st_mode) and st.st_dev == dev:
            for name in sorted(os.listdir(path), reverse=True):
                stack.append(os.path.join(rel, name) if rel else name)
    return out


def main():
    lines = []
    for i, top in enumerate(sys.argv[1:]):
        ents = entries(top)
        seen = {}
        for rel, path, st in ents:
            kind = stat.S_IFMT(st.st_mode)
            f = ["%d:%s" % (i, rel), "%o" % st.st_mode, str(st.st_uid), str(st.st_gid), str(st.st_mtime_ns)]
            # A directory's atime moves at every listing, a symlink's at
            # every readlink: only other entries' atimes are compared.
            if not stat.S_ISDIR(st.st_mode) and not stat.S_ISLNK(st.st_mode):
                f.append("a" + str(st.st_atime_ns))
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                f.append("rdev=%d" % st.st_rdev)
            if stat.S_ISLNK(st.st_mode):
                f.append("->" + os.readlink(path))
            try:
                names = sorted(os.listxattr(path, follow_symlinks=False))
            except OSError:
                names = []
            for n in names:
                try:
                    v = os.getxattr(path, n, follow_symlinks=False)
                except OSError as e:
                    v = ("error %d" % e.errno).encode()
                f.append("x:%s=%s" % (n, v.hex()))
            if kind != stat.S_IFDIR and st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                f.append("link=" + seen.setdefault(key, rel))
            lines.append((f, path, st))
        for f, path, st in lines[-len(ents):]:
            if stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NOATIME", 0))
                try:
                    while True:
                        b = os.read(fd, 1 << 20)
                        if not b:
                            break
                        h.update(b)
                finally:
                    os.close(fd)
                f.append("size=%d" % st.st_size)
                f.append(h.hexdigest())
    total = hashlib.sha256()
    for f, _, _ in lines:
        line = " ".join(f)
        print(line)
        total.update(line.encode() + b"\n")
    print(total.hexdigest())


main()
