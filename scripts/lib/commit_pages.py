"""Which tree each page of the last commits belongs to, for scripts/bench-pages.

Reads an strace log of the writer thread's page writes (pwrite64, writev after lseek, pwritev;
fdatasync ends a commit) and the LMDB data file as the daemon left it, walks every tree of the
file from its meta page (LMDB 0.9's page layout, 64-bit), and prints, for each of the last
commits, how many of the pages it wrote each tree now holds. A page a later commit rewrote (LMDB
copies a page on write) belongs to no tree by then: it counts as "rewritten since".

    python3 commit_pages.py STRACE_LOG DATA_FILE FD[,FD...] [COMMITS]  (default 3)
"""
import collections
import re
import struct
import sys

PAGE = 4096
# Page flags (mdb.c): branch, leaf, overflow, meta.
P_BRANCH, P_LEAF, P_OVERFLOW = 0x01, 0x02, 0x04
# Leaf node flags: the value is on overflow pages; the value is a named tree's record.
F_BIGDATA, F_SUBDATA = 0x01, 0x02
NO_ROOT = 0xFFFFFFFFFFFFFFFF


def newest_meta(data):
    """The meta page with the higher transaction id: its free and main trees' records."""
    metas = []
    for page in (0, 1):
        base = page * PAGE + 16  # past the page header
        free, main = data[base + 24:base + 72], data[base + 72:base + 120]
        last_page, txnid = struct.unpack_from("<QQ", data, base + 120)
        metas.append((txnid, free, main))
    return max(metas)


def root_of(record):
    """md_root of an MDB_db record (48 bytes)."""
    return struct.unpack_from("<Q", record, 40)[0]


def walk(data, root, name, owner, named=None):
    """Marks every page of the tree at `root` as `name`'s; collects named trees' records."""
    if root == NO_ROOT:
        return
    stack = [root]
    while stack:
        page = stack.pop()
        base = page * PAGE
        owner[page] = name
        flags, lower = struct.unpack_from("<HH", data, base + 10)
        for index in range((lower - 16) // 2):
            (offset,) = struct.unpack_from("<H", data, base + 16 + 2 * index)
            lo, hi, node_flags, key_size = struct.unpack_from("<HHHH", data, base + offset)
            value = base + offset + 8 + key_size
            if flags & P_BRANCH:
                stack.append(lo | (hi << 16) | (node_flags << 32))
            elif flags & P_LEAF and node_flags & F_BIGDATA:
                (first,) = struct.unpack_from("<Q", data, value)
                (count,) = struct.unpack_from("<I", data, first * PAGE + 12)
                for extra in range(count):
                    owner[first + extra] = name
            elif flags & P_LEAF and node_flags & F_SUBDATA and named is not None:
                key = data[base + offset + 8:base + offset + 8 + key_size].decode(errors="replace")
                named[key] = data[value:value + 48]


def page_owners(path):
    data = open(path, "rb").read()
    _, free, main = newest_meta(data)
    owner = {0: "(meta)", 1: "(meta)"}
    named = {}
    walk(data, root_of(free), "(free list)", owner)
    walk(data, root_of(main), "(tree of trees)", owner, named)
    for name, record in named.items():
        walk(data, root_of(record), name, owner)
    return owner


def commits(log, fds):
    """The page runs (first page, pages) each commit wrote, in order."""
    done, current, position = [], [], {}
    call = re.compile(r"^(\w+)\((\d+)(?:, (.*))?\)\s+=\s+(-?\d+)")
    for line in open(log, errors="replace"):
        match = call.match(line)
        if not match:
            continue
        name, fd, args, result = match.group(1), int(match.group(2)), match.group(3), int(match.group(4))
        if fd not in fds or result < 0:
            continue
        if name == "lseek":
            position[fd] = result
        elif name in ("pwrite64", "pwritev", "writev"):
            offset = int(args.rsplit(", ", 1)[1]) if name != "writev" else position.get(fd, 0)
            if name == "writev":
                position[fd] = offset + result
            if result >= PAGE:
                current.append((offset // PAGE, result // PAGE))
        elif name in ("fdatasync", "fsync"):
            if current:
                done.append(current)
            current = []
    return done


def main():
    log, path, fds = sys.argv[1], sys.argv[2], {int(fd) for fd in sys.argv[3].split(",")}
    last = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    owner = page_owners(path)
    runs = commits(log, fds)
    if not runs:
        print("no commit seen: was the writer thread traced?")
        return
    shown = runs[-last:]
    for number, commit in enumerate(shown, start=len(runs) - len(shown) + 1):
        trees = collections.Counter()
        for first, count in commit:
            for page in range(first, first + count):
                trees[owner.get(page, "(rewritten since)")] += 1
        pages = sum(trees.values())
        parts = ", ".join(f"{name} {count} ({100 * count / pages:.0f} %)" for name, count in trees.most_common())
        print(f"commit {number} of {len(runs)}: {pages} pages in {len(commit)} writes: {parts}")

if __name__ == "__main__":
    main()
