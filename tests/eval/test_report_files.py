"""Report files are written atomically and readable like any other output (not mkstemp's 0600)."""

import os
import stat

import matplotlib

matplotlib.use("Agg")

from lethe.report import atomic_write_text, save_figure  # noqa: E402


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_text_and_figure_get_the_umask_mode(tmp_path):
    import matplotlib.pyplot as plt

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "r.md", "hello\n")
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        save_figure(fig, tmp_path / "r.png")
        plt.close(fig)
    finally:
        os.umask(old)
    assert (tmp_path / "r.md").read_text() == "hello\n"
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    assert _mode(tmp_path / "r.md") == _mode(tmp_path / "r.png") == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.md", "r.png"]  # no temp files left
