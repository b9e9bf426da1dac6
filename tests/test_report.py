"""`selfinstruct report`: a self-contained page, checked as a browser renders it."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from selfinstruct.cli import app
from tests.test_stats import make_pool

SECTIONS = ["summary", "rouge", "lengths", "verbs", "filter", "kept", "rejected"]
NASTY = '<script>document.title="pwned"</script><img src=x onerror=alert(1)> & "quotes"'
# Run on load: how many images there are and which did not decode (naturalWidth 0).
PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  document.body.dataset.images = String(images.length);
  document.body.dataset.broken = images
    .filter((i) => !i.complete || i.naturalWidth === 0).map((i) => i.alt).join("|");
});
</script>"""


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def nasty_pool() -> None:
    """The hand-made pool, plus a kept and a rejected record full of HTML."""
    make_pool()
    with open("data/dataset.jsonl", "a", encoding="utf-8") as fp:
        row = {
            "id": "i-x-0",
            "instruction": "Echo this: " + NASTY,
            "input": NASTY,
            "output": NASTY,
            "is_classification": False,
        }
        fp.write(json.dumps(row) + "\n")
    with open("data/filter_rejects.jsonl", "a", encoding="utf-8") as fp:
        reject = {"id": "i-y", "rule": "refusal", "instruction": NASTY, "detail": NASTY}
        fp.write(json.dumps(reject) + "\n")


def test_report_is_one_self_contained_escaped_page() -> None:
    nasty_pool()
    result = run("report", "--out", "site/report.html")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "report: done\n  page     site/report.html\n  samples  5 kept, 4 rejected\n"
    )
    page = Path("site/report.html").read_text(encoding="utf-8")
    assert [f'<section id="{s}">' in page for s in SECTIONS] == [True] * len(SECTIONS)
    # Nothing to fetch: every src/href is an embedded PNG, and there is no script at all.
    refs = re.findall(r'\b(?:src|href)="([^"]*)"', page)
    assert len(refs) == 4 and all(r.startswith("data:image/png;base64,") for r in refs)
    for ref in refs:
        assert base64.b64decode(ref.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    assert "<script" not in page and "url(" not in page and "@import" not in page
    escaped = "&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;&lt;img src=x"
    assert page.count(escaped) == 5  # instruction, input, output; reject instruction, detail
    assert os_names("site") == ["report.html"]


def os_names(folder: str) -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir())


def test_report_before_filter_says_so() -> None:
    make_pool(dataset=False)
    assert run("report").exit_code == 0
    page = Path("report.html").read_text(encoding="utf-8")
    assert "No dataset yet: run <code>selfinstruct filter</code>." in page
    assert "Lengths (pool)" in page


def test_report_without_matplotlib_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    make_pool()
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    result = run("report")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: the report needs matplotlib - pip install 'selfinstruct[report]'\n"
    )
    assert not Path("report.html").exists()


def chromium_dom(page: Path, profile: Path) -> str:
    """The DOM after load, as headless Chromium renders the page from disk."""
    argv = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--dump-dom",
        "--virtual-time-budget=5000",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_report_renders_in_a_browser(tmp_path: Path) -> None:
    nasty_pool()
    assert run("report", "--out", "report.html").exit_code == 0
    page = Path("report.html").read_text(encoding="utf-8")
    probed = Path("probed.html")
    probed.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = chromium_dom(probed, tmp_path / "profile")
    body = re.search(r"<body([^>]*)>", dom)
    assert body is not None, dom[:500]
    assert 'data-images="4"' in body.group(1)
    assert 'data-broken=""' in body.group(1)
    assert [f'<section id="{s}">' in dom for s in SECTIONS] == [True] * len(SECTIONS)
    assert "<title>selfinstruct report: data</title>" in dom  # the record's script did not run
    assert dom.count("&lt;script&gt;document.title=") == 5
