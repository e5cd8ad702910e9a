"""``polyfleet.io.write_output``: each rule of issue 20 on a real object in a temp directory."""

from __future__ import annotations

import errno
import os
import socket
import stat
import sys
import threading
from pathlib import Path

import pytest

from polyfleet.io import OutputError, check_output, write_output, write_output_text
from polyfleet.io import atomic as atomic_mod


def _entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_new_file_gets_the_umask_mode(tmp_path, umask_022):
    path = tmp_path / "plan.json"
    write_output_text(path, "{}\n")
    assert path.read_text() == "{}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # 0666 & ~022, not mkstemp's 0600
    assert _entries(tmp_path) == ["plan.json"]


def test_new_file_mode_follows_another_umask(tmp_path):
    old = os.umask(0o027)
    try:
        write_output_text(tmp_path / "x", "a")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x").stat().st_mode) == 0o640


def test_existing_file_keeps_its_mode_and_is_replaced_whole(tmp_path, umask_022):
    path = tmp_path / "plan.json"
    path.write_text("old contents, longer than the new ones\n")
    path.chmod(0o664)
    inode = path.stat().st_ino
    write_output_text(path, "new\n")
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o664
    assert path.stat().st_ino != inode  # renamed over, not truncated in place
    assert _entries(tmp_path) == ["plan.json"]


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_existing_file_keeps_its_owner_as_root(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text("old")
    os.chown(path, 1234, 5678)
    write_output_text(path, "new")
    st = path.stat()
    assert (st.st_uid, st.st_gid, path.read_text()) == (1234, 5678, "new")


def test_symlink_writes_its_target_and_stays_a_link(tmp_path, umask_022):
    target = tmp_path / "real" / "plan.json"
    target.parent.mkdir()
    target.write_text("old")
    target.chmod(0o600)
    link = tmp_path / "link.json"
    link.symlink_to(Path("real") / "plan.json")  # relative link, resolved from its own directory
    write_output_text(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(Path("real") / "plan.json")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert _entries(target.parent) == ["plan.json"]  # the temp file lived beside the target


def test_dangling_symlink_creates_its_target(tmp_path, umask_022):
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "made.json")
    write_output_text(link, "x")
    assert link.is_symlink() and (tmp_path / "made.json").read_text() == "x"


def test_symlink_chain_resolves_to_the_last_target(tmp_path):
    (tmp_path / "c").write_text("old")
    (tmp_path / "b").symlink_to(tmp_path / "c")
    (tmp_path / "a").symlink_to(tmp_path / "b")
    write_output_text(tmp_path / "a", "new")
    assert (tmp_path / "c").read_text() == "new"
    assert (tmp_path / "a").is_symlink() and (tmp_path / "b").is_symlink()


def test_fifo_is_written_through_to_its_reader(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []

    def reader() -> None:
        with open(fifo, "rb") as fh:
            got.append(fh.read())

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    write_output_text(fifo, "through the pipe\n")
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert got == [b"through the pipe\n"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still a FIFO, not a regular file
    assert _entries(tmp_path) == ["pipe"]


def test_unix_socket_is_written_through(tmp_path):
    path = tmp_path / "sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    got: list[bytes] = []

    def accept() -> None:
        conn, _ = server.accept()
        with conn:
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
            got.append(b"".join(chunks))

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    write_output_text(path, "to the socket")
    thread.join(timeout=10)
    server.close()
    assert got == [b"to the socket"]
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


def test_dev_null_stays_a_device():
    before = os.stat("/dev/null")
    write_output_text("/dev/null", "discarded")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode)
    assert (after.st_ino, after.st_rdev, stat.S_IMODE(after.st_mode)) == (
        before.st_ino,
        before.st_rdev,
        stat.S_IMODE(before.st_mode),
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="os.mknod of a character device needs root")
def test_private_character_device_is_written_through_as_root(tmp_path):
    node = tmp_path / "null"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a private /dev/null
    before = os.lstat(node)
    write_output_text(node, "x" * 10_000)
    st = os.lstat(node)
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert (st.st_ino, st.st_mode) == (before.st_ino, before.st_mode)  # the same node, not a file
    assert _entries(tmp_path) == ["null"]


def test_dash_is_stdout(tmp_path, capfdbinary, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_output_text("-", "to stdout\n")
    assert capfdbinary.readouterr().out == b"to stdout\n"
    assert _entries(tmp_path) == []  # no file literally named '-'


@pytest.mark.parametrize(
    ("make", "name", "reason"),
    [
        (lambda d: (d / "sub").mkdir(), "sub", "is a directory"),
        (lambda d: None, "missing/plan.json", "no such directory"),
        (lambda d: (d / "file").write_text("f"), "file/plan.json", "a parent is not a directory"),
    ],
)
def test_bad_places_are_one_line_exit_2(tmp_path, make, name, reason):
    make(tmp_path)
    before = _entries(tmp_path)
    with pytest.raises(OutputError) as info:
        write_output_text(tmp_path / name, "x")
    assert info.value.exit_code == 2
    assert str(info.value) == f"cannot write {tmp_path / name}: {reason}"
    with pytest.raises(OutputError) as early:
        check_output(tmp_path / name)
    assert early.value.reason == reason
    assert _entries(tmp_path) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory")
def test_read_only_directory_as_a_user(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "plan.json").write_text("old")
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="permission denied"):
            write_output_text(ro / "plan.json", "new")
        assert (ro / "plan.json").read_text() == "old"
    finally:
        ro.chmod(0o755)


def test_read_only_file_system_is_named(tmp_path, monkeypatch):
    """A read-only place (EROFS when the temp file is created): one line, old file untouched."""
    path = tmp_path / "plan.json"
    path.write_text("old")

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(atomic_mod.tempfile, "mkstemp", refuse)
    with pytest.raises(OutputError) as info:
        write_output_text(path, "new")
    assert (info.value.reason, info.value.exit_code) == ("read-only file system", 2)
    assert path.read_text() == "old"


@pytest.mark.parametrize(
    ("code", "reason"), [(errno.ENOSPC, "no space left on device"), (errno.EDQUOT, "disk quota exceeded")]
)
def test_full_disk_mid_write_keeps_the_old_file_and_removes_the_temp(tmp_path, code, reason):
    path = tmp_path / "plan.json"
    path.write_text("old plan")

    def write(fh) -> None:
        fh.write(b"half a plan")
        raise OSError(code, os.strerror(code))

    with pytest.raises(OutputError) as info:
        write_output(path, write)
    assert str(info.value) == f"cannot write {path}: {reason}"
    assert info.value.exit_code == 1  # the path was right; the run could not finish
    assert path.read_text() == "old plan"
    assert _entries(tmp_path) == ["plan.json"]


def test_full_disk_at_fsync_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "plan.json"
    path.write_text("old plan")

    def fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic_mod.os, "fsync", fsync)
    with pytest.raises(OutputError, match="no space left on device"):
        write_output_text(path, "new plan")
    assert path.read_text() == "old plan"
    assert _entries(tmp_path) == ["plan.json"]


def test_an_error_in_the_writer_propagates_and_touches_nothing(tmp_path):
    path = tmp_path / "chart.png"
    path.write_bytes(b"old")

    def write(fh) -> None:
        fh.write(b"partial")
        raise ValueError("renderer failed")

    with pytest.raises(ValueError, match="renderer failed"):
        write_output(path, write)
    assert path.read_bytes() == b"old"
    assert _entries(tmp_path) == ["chart.png"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/dev/full is Linux")
def test_dev_full_is_written_through_and_fails_as_enospc():
    """/dev/full is a real device that answers every write with ENOSPC: in place, one line."""
    with pytest.raises(OutputError) as info:
        write_output_text("/dev/full", "x" * 100_000)
    assert (info.value.reason, info.value.exit_code) == ("no space left on device", 1)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
