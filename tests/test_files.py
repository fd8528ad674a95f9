"""atomic_write: a reader sees the old file or the whole new one; an interrupted write leaves the old file."""

import os
import signal
import subprocess
import sys

import pytest

from omniperceiver.files import atomic_write


def test_a_write_replaces_the_file_with_ordinary_permissions(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"old")
    atomic_write(path, lambda file: file.write(b"new contents"))
    assert path.read_bytes() == b"new contents"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert os.listdir(tmp_path) == ["model.bin"]


def test_a_write_that_raises_midway_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"old contents")

    def fail_midway(file):
        file.write(b"half of the new")
        file.flush()
        raise KeyboardInterrupt  # a BaseException, as Ctrl-C raises

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, fail_midway)
    assert path.read_bytes() == b"old contents"
    assert os.listdir(tmp_path) == ["model.bin"]


def test_a_process_killed_midway_leaves_the_old_file(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"old contents")
    script = (
        "import os, signal, sys\n"
        "from omniperceiver.files import atomic_write\n"
        "def killed_midway(file):\n"
        "    file.write(b'half of the new')\n"
        "    file.flush()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "atomic_write(sys.argv[1], killed_midway)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True)
    assert done.returncode == -signal.SIGKILL
    assert path.read_bytes() == b"old contents"  # (the killed process' temporary file stays, hidden: .model.bin.*)
