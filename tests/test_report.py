"""`selfinstruct report`: a self-contained page, checked as a browser renders it."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from selfinstruct.cli import app
from tests.fakecache import PrefixCache
from tests.fakeserver import FakeOpenAI
from tests.pooldata import SEEDS as SEEDS_TEXTS
from tests.pooldata import MakeServer, invoke, lines, write_seeds
from tests.test_stats import make_pool

SECTIONS = [
    "provenance",
    "summary",
    "rouge",
    "lengths",
    "verbs",
    "stage1",
    "filter",
    "kept",
    "rejected",
]
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
    # The record's script did not run; the title says what the data is, not where it lies.
    assert "<title>Self-Instruct dataset: 5 instances</title>" in dom
    assert dom.count("&lt;script&gt;document.title=") == 5


def made_pool(make_server: MakeServer) -> FakeOpenAI:
    """A pool made by `run` against the fake server, with a stage 1 reject full of HTML."""
    server = make_server(prefix_cache=PrefixCache(block=16, minimum=0))
    write_seeds(Path("seeds.jsonl"), SEEDS_TEXTS)
    result = invoke(server, "run", "--seeds", "seeds.jsonl", "-n", "24", "--quiet", "--seed", "1")
    assert result.exit_code == 0, result.output
    with open("data/rejected_instructions.jsonl", "a", encoding="utf-8") as fp:
        # A reason the fake model's ASCII tasks never get: the sample (3 a reason) shows it.
        nasty = {"id": "r-x", "instruction": NASTY, "reason": "starts_non_ascii", "detail": NASTY}
        fp.write(json.dumps({**nasty, "request": "r"}) + "\n")
    return server


def test_report_says_where_the_data_came_from(make_server: MakeServer) -> None:
    made_pool(make_server)
    assert run("report").exit_code == 0
    page = Path("report.html").read_text(encoding="utf-8")
    origin = dict(re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td></tr>", provenance_of(page)))
    assert origin["model"] == "gpt-4o-mini (chat API, 127.0.0.1)"
    assert re.fullmatch(r"\S+ to \S+", origin["made"])
    totals = json.loads(Path("data/run.json").read_text())["stages"]
    for stage in ("generate", "classify", "instances"):
        t = totals[stage]["totals"]
        share = f"{t['cached_tokens'] / t['prompt_tokens']:.0%} cached"
        assert origin[f"{stage} tokens"] == (
            f"{t['requests']} requests, {t['prompt_tokens']} prompt ({share}) + "
            f"{t['completion_tokens']} completion"
        )
    cost = sum(t["totals"]["cost"] for t in totals.values())
    assert origin["cost"].startswith(f"${cost:.4f} for ")
    assert "examples 8, machine_examples 2" in origin["stage 1 settings"]
    assert "prompt generate_chat sha256 " in origin["stage 1 settings"]
    assert origin["seed tasks"].startswith(f"{len(SEEDS_TEXTS)} in seeds.jsonl (sha256 ")
    assert "sk-test" not in page and "api_key" not in page


def provenance_of(page: str) -> str:
    return page.split('<section id="provenance">', 1)[1].split("</section>", 1)[0]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_report_shows_stage_1_rejects_and_provenance_in_a_browser(
    make_server: MakeServer, tmp_path: Path
) -> None:
    made_pool(make_server)
    reasons = Counter(r["reason"] for r in lines("data/rejected_instructions.jsonl"))
    assert run("report").exit_code == 0
    dom = chromium_dom(Path("report.html"), tmp_path / "profile")
    model = "gpt-4o-mini"
    instances = len(lines("data/dataset.jsonl"))
    assert f"<title>Self-Instruct dataset: {instances} instances by {model}</title>" in dom
    stage1 = dom.split('<section id="stage1">', 1)[1].split("</section>", 1)[0]
    shown = dict(re.findall(r'<span class="rule">([^<]*)</span></td><td class="n">(\d+)', stage1))
    assert {k: int(v) for k, v in shown.items()} == dict(reasons)
    assert f"{sum(reasons.values())} candidate instructions" in stage1
    assert stage1.count("&lt;script&gt;document.title=") == 2  # instruction and detail, escaped
    assert "<td>model</td><td>gpt-4o-mini (chat API, 127.0.0.1)</td>" in dom


def test_the_verbs_chart_has_a_legend_for_its_colours() -> None:
    make_pool()
    from matplotlib.patches import Patch

    from selfinstruct.outputs.report import verbs_figure
    from selfinstruct.outputs.stats import pool_stats
    from selfinstruct.store.pool import Pool

    stats = pool_stats(Pool(Path("data")))
    [legend] = verbs_figure(stats).legends
    most = max(len(v.objects) for v in stats.verbs)
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels[0] == "1st object (most frequent)" and len(labels) == most + 1
    assert labels[-1] == "other objects, or none"
    colours = [tuple(h.get_facecolor()) for h in legend.legend_handles if isinstance(h, Patch)]
    assert len(set(colours)) == len(labels)  # one colour per meaning
