"""Writing a command's outputs so that nothing is lost: the one rule every ``colonsim`` command follows.

1. Validate everything first: an output path that is empty, in a missing folder, of the wrong kind
   (a folder where a file is asked, or the other way round), or that exists without ``--overwrite``
   (a folder counts as existing when it holds anything) is refused before anything is written.
2. Write the new output beside the old one, in a hidden staging folder of the same folder
   (``.NAME.<pid>.staging/``), so that the final move is a rename on one file system.
3. Replace the old output only once the new one is complete: the staged files are renamed into
   place when the ``with`` block ends without an exception. An exception (bad input found late,
   Ctrl-C) removes the staging folder and leaves the old output as it was.
4. Never delete what the command did not make: into an existing folder, only the files the command
   wrote are moved (replacing files of the same name); everything else in it stays.

Use::

    from colonsim.data import outputs
    with outputs.staged(out, overwrite=args.overwrite) as tmp:   # tmp: where to write OUT's bytes
        write_everything(tmp)             # companions beside tmp (tmp.with_suffix(...)) come along
    with outputs.staged(out_dir, overwrite=args.overwrite, directory=True) as tmp_dir:
        write_files_into(tmp_dir)

and, for a long run that other processes must not write at the same time, :func:`lock`.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
from pathlib import Path
from typing import Iterator, Sequence

from colonsim.errors import InputError

STAGING_SUFFIX = ".staging"


def check_target(path: str | Path, *, overwrite: bool = False, directory: bool = False,
                 flag: str = "--out", companions: Sequence[str | Path] = ()) -> Path:
    """Refuse an output that cannot be written or must not be replaced; returns it as a Path.

    ``companions``: other files the command writes beside ``path`` (a mesh's centreline), checked
    the same way. Raises InputError naming ``flag``.
    """
    if path is None or str(path).strip() == "":
        raise InputError(f"{flag} is empty; give a {'folder' if directory else 'file'} name")
    p = Path(path)
    if "\x00" in str(p):
        raise InputError(f"{flag} {str(p)!r} holds a NUL byte")
    parent = p.parent
    if not parent.is_dir():
        raise InputError(f"output folder {parent} does not exist (for {flag} {p})")
    if directory:
        if p.exists() and not p.is_dir():
            raise InputError(f"{flag} {p} is a file; {flag} needs a folder")
        if p.is_dir() and any(p.iterdir()) and not overwrite:
            raise InputError(f"{flag} {p} is a folder that holds files; pass --overwrite to write into it "
                             "(only the files this command writes are replaced)")
        return p
    for q in (p, *map(Path, companions)):
        if q.is_dir():
            raise InputError(f"{flag} {q} is a folder; {flag} needs a file name")
        if q.exists() and not overwrite:
            raise InputError(f"{q} exists; pass --overwrite to replace it")
    return p


def replace(new: str | Path, old: str | Path) -> None:
    """Move the complete file ``new`` onto ``old`` atomically and make the rename durable."""
    os.replace(new, old)
    _fsync_dir(Path(old).parent)


@contextlib.contextmanager
def staged(path: str | Path, *, overwrite: bool = False, directory: bool = False, flag: str = "--out",
           companions: Sequence[str | Path] = ()) -> Iterator[Path]:
    """Check ``path`` (:func:`check_target`), yield where to write it, and move what was written
    into place when the block ends without an exception (see the module doc).

    For a file, the yielded path has the same name as ``path`` inside the staging folder, so its
    suffix (which picks the format of cv2.imwrite, trimesh.export, ...) is kept, and companion files
    written beside it (same folder) move along. For ``directory=True`` the yielded path is the
    staging folder itself, to fill with the output folder's files.
    """
    p = check_target(path, overwrite=overwrite, directory=directory, flag=flag, companions=companions)
    staging = p.parent / f".{p.name}.{os.getpid()}{STAGING_SUFFIX}"
    shutil.rmtree(staging, ignore_errors=True)   # left by a killed run of this pid number
    staging.mkdir()
    try:
        yield staging if directory else staging / p.name
        _commit(staging, p, overwrite=overwrite, directory=directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _commit(staging: Path, p: Path, *, overwrite: bool, directory: bool) -> None:
    entries = sorted(staging.iterdir(), key=lambda e: e.name == p.name)   # the main output last
    if directory:
        if not p.exists():
            os.replace(staging, p)   # the whole folder at once
            _fsync_dir(p.parent)
            return
        dest = p
    else:
        if not any(e.name == p.name for e in entries):
            raise InputError(f"nothing was written to {p}")
        dest = p.parent
    for e in entries:   # re-checked: a file that appeared since the check is not replaced silently
        target = dest / e.name
        if (target.exists() or target.is_symlink()) and not overwrite:
            raise InputError(f"{target} exists; pass --overwrite to replace it")
    for e in entries:
        target = dest / e.name
        if target.is_dir() and not target.is_symlink():
            if not e.is_dir():
                raise InputError(f"cannot replace the folder {target} with a file")
            shutil.rmtree(target)   # a folder of the same name that this command writes anew
        os.replace(e, target)
    _fsync_dir(dest)


@contextlib.contextmanager
def lock(path: str | Path, what: str = "output") -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the block; InputError at once if another process holds
    it. The lock is the hidden file ``.NAME.lock`` beside ``path``, removed when the block ends; one
    left by a killed process is free again (the kernel releases the lock with the process)."""
    p = Path(path)
    lock_path = p.parent / f".{p.name}.lock"
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_pid(fd)
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                by = f" (pid {holder})" if holder else ""
                raise InputError(f"{p} is being written by another process{by}; wait for it to end, "
                                 f"or choose another {what}") from None
            raise
        try:   # the file may have been unlinked by its holder between our open and our lock
            if os.fstat(fd).st_ino == os.stat(lock_path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock_path)
        os.close(fd)


def _read_pid(fd: int) -> str:
    try:
        raw = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return ""
    return raw if raw.isdigit() else ""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# The names under which ``colonsim`` exports these (``colonsim.staged_output`` and so on).
check_output = check_target
staged_output = staged
replace_output = replace
output_lock = lock
