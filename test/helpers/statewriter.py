#!/usr/bin/env python3
"""A program that changes its state directory in every way programs do, and logs every state.

    statewriter.py DIR LOG --seed N [--burst OPS] [--idle-ms MS] [--no-mmap]

Operations (seeded): replace a file atomically (temp, fsync, rename over), rewrite bytes in place,
append with fsync, truncate, create, delete, make and remove a subdirectory, and store bytes into a
file mapped MAP_SHARED. After every system call that changes the directory, the digest of the whole
directory (as this program knows it) is appended to LOG, so every state the directory ever had is
listed: a stop (SIGSTOP, a cgroup freeze) lands between system calls, so the directory is then one of
them. mmap stores are single bytes, each its own state. Runs in bursts of OPS operations separated
by MS of idleness, until SIGTERM.
"""
import hashlib
import mmap
import os
import random
import signal
import sys
import time

MMAP_SIZE = 16384


class State:
    def __init__(self, root, log):
        self.root = root
        self.files = {}  # relative path -> bytes
        self.log = open(log, 'a', buffering=1)

    def digest(self):
        h = hashlib.sha256()
        for name in sorted(self.files, key=lambda n: n.encode()):
            data = self.files[name]
            h.update(name.encode() + b'\0' + str(len(data)).encode() + b'\0' + data)
        return h.hexdigest()

    def logged(self):
        self.log.write(self.digest() + '\n')

    def path(self, rel):
        return os.path.join(self.root, rel)


def main():
    root, log = sys.argv[1], sys.argv[2]
    seed = int(sys.argv[sys.argv.index('--seed') + 1]) if '--seed' in sys.argv else 1
    burst = int(sys.argv[sys.argv.index('--burst') + 1]) if '--burst' in sys.argv else 20
    idle = int(sys.argv[sys.argv.index('--idle-ms') + 1]) if '--idle-ms' in sys.argv else 200
    use_mmap = '--no-mmap' not in sys.argv
    rnd = random.Random(seed)
    s = State(root, log)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))

    # The mapped file exists from the start; the directory as first created is state zero.
    if use_mmap:
        mm_fd = os.open(s.path('shared.mmap'), os.O_RDWR | os.O_CREAT, 0o644)
        os.ftruncate(mm_fd, MMAP_SIZE)
        mm = mmap.mmap(mm_fd, MMAP_SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        s.files['shared.mmap'] = bytes(MMAP_SIZE)
    for i in range(6):
        data = rnd.randbytes(rnd.randint(0, 40000))
        with open(s.path(f'f{i}.dat'), 'wb') as f:
            f.write(data)
        s.files[f'f{i}.dat'] = data
    s.logged()
    print('ready', flush=True)

    def regular():
        return [n for n in s.files if n != 'shared.mmap']

    def op():
        kind = rnd.choice(['replace', 'inplace', 'append', 'truncate', 'create', 'delete', 'mkdir'] + (['mmap'] if use_mmap else []))
        names = regular()
        if kind == 'replace' and names:
            name = rnd.choice(names)
            tmp = name + '.tmp'
            data = rnd.randbytes(rnd.randint(0, 40000))
            fd = os.open(s.path(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            s.files[tmp] = b''
            s.logged()
            os.write(fd, data)
            s.files[tmp] = data
            s.logged()
            os.fsync(fd)
            os.close(fd)
            os.rename(s.path(tmp), s.path(name))
            s.files[name] = s.files.pop(tmp)
            s.logged()
        elif kind == 'inplace' and names:
            name = rnd.choice(names)
            old = s.files[name]
            if not old:
                return
            off = rnd.randrange(len(old))
            patch = rnd.randbytes(min(len(old) - off, rnd.randint(1, 3000)))
            fd = os.open(s.path(name), os.O_WRONLY)
            os.pwrite(fd, patch, off)
            os.close(fd)
            s.files[name] = old[:off] + patch + old[off + len(patch):]
            s.logged()
        elif kind == 'append' and names:
            name = rnd.choice(names)
            data = rnd.randbytes(rnd.randint(1, 5000))
            fd = os.open(s.path(name), os.O_WRONLY | os.O_APPEND)
            os.write(fd, data)
            s.files[name] += data
            s.logged()
            os.fsync(fd)
            os.close(fd)
        elif kind == 'truncate' and names:
            name = rnd.choice(names)
            n = rnd.randint(0, len(s.files[name]))
            os.truncate(s.path(name), n)
            s.files[name] = s.files[name][:n]
            s.logged()
        elif kind == 'create':
            in_sub = os.path.isdir(s.path('sub')) and rnd.random() < 0.3
            name = f'sub/x{rnd.randrange(100)}' if in_sub else f'n{rnd.randrange(1000)}.dat'
            if name in s.files:
                return
            data = rnd.randbytes(rnd.randint(0, 20000))
            fd = os.open(s.path(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            s.files[name] = b''
            s.logged()
            if data:
                os.write(fd, data)
                s.files[name] = data
                s.logged()
            os.close(fd)
        elif kind == 'delete' and len(names) > 3:
            name = rnd.choice(names)
            os.unlink(s.path(name))
            del s.files[name]
            s.logged()
        elif kind == 'mkdir':
            sub = s.path('sub')
            if os.path.isdir(sub):
                inside = [n for n in s.files if n.startswith('sub/')]
                for n in inside:
                    os.unlink(s.path(n))
                    del s.files[n]
                    s.logged()
                os.rmdir(sub)  # an empty directory is not part of the digest: no new state
            else:
                os.mkdir(sub)
        elif kind == 'mmap':
            cur = bytearray(s.files['shared.mmap'])
            for _ in range(rnd.randint(1, 8)):
                i = rnd.randrange(MMAP_SIZE)
                v = rnd.randrange(256)
                mm[i] = v
                cur[i] = v
                s.files['shared.mmap'] = bytes(cur)
                s.logged()

    while not stop:
        for _ in range(burst):
            if stop:
                break
            op()
        time.sleep(idle / 1000)
    if use_mmap:
        mm.close()
        os.close(mm_fd)
    s.log.close()


if __name__ == '__main__':
    main()
