"""docs/results.md and README.md's results table match the JSON files they are generated from; the README
stays a front door; every relative link in README.md and docs/ leads somewhere."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from training import results

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def test_results_doc_and_readme_table_are_current():
    assert results.main(["--check"]) == 0, "run: python -m training.results"


def test_a_changed_figure_changes_the_generated_doc(tmp_path):
    for source in {s for section in results.SECTIONS for s in section.sources}:
        (tmp_path / source).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / source, tmp_path / source)
    fhe = tmp_path / "artifacts/metrics/lfw_fhe.json"
    data = json.loads(fhe.read_text())
    data["fhe_accuracy"] = 0.5
    fhe.write_text(json.dumps(data))
    doc = results.render(tmp_path)
    assert doc != results.render(ROOT)
    assert results.pm(0.5, data["fhe_std"]) in doc  # read at generation time, not copied from an earlier run
    assert results.pm(0.5, data["fhe_std"]) not in results.render(ROOT)
    assert "`artifacts/metrics/lfw_fhe.json`" in doc  # each table names its source


def test_readme_is_a_front_door_with_the_space_front_matter():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert readme.startswith("---\ntitle: privface\n") and "app_file: streamlit_app.py" in readme.split("\n---\n")[0]
    assert "make run" in readme and "make test" in readme


def _anchors(markdown: str) -> set[str]:
    headings = (line.lstrip("#").strip() for line in markdown.splitlines() if line.startswith("#"))
    return {results.anchor(h.replace("`", "")) for h in headings}


def test_every_relative_link_leads_to_a_file_and_heading():
    broken = []
    for doc in DOCS:
        for target in LINK.findall(doc.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # http:, https:, mailto:
            path, _, fragment = target.partition("#")
            file = (doc.parent / path).resolve() if path else doc
            if not file.exists():
                broken.append(f"{doc.name}: {target} (no such file)")
            elif fragment and file.suffix == ".md" and fragment not in _anchors(file.read_text()):
                broken.append(f"{doc.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
