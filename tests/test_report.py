"""The HTML report renders in headless Chromium: every image loads with a non-zero size, no console errors."""

from __future__ import annotations

import shutil
import subprocess

import pandas as pd
import pytest

from xbarllm.cli import main
from xbarllm.explore.db import ResultDB
from xbarllm.explore.run import evaluate
from xbarllm.explore.sweep import Sweep, points
from xbarllm.report.html import write_report


def _chromium() -> tuple[str, str]:
    """Paths of chromium and chromedriver, installing the Debian packages when they are missing."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        try:
            subprocess.run(["apt-get", "install", "-y", "-q", "chromium", "chromium-driver"], check=True,
                           capture_output=True, timeout=900)
        except (OSError, subprocess.SubprocessError) as e:
            pytest.skip(f"headless Chromium unavailable and could not be installed: {e}")
    return shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    db = ResultDB(tmp / "dse.sqlite")
    db.insert(evaluate(points(Sweep(models=["bert-base"], axes={"compute.d_c": [8, 32, 64],
                                                                "compute.encoding_s": [1, 2]}))))
    db.close()
    sim = tmp / "sim.csv"
    pd.DataFrame({"noise": [0, 0.05, 0, 0.05], "bits_per_cell": [1, 1, 2, 2], "task": "stsb",
                  "metric": "spearman_x100", "value": [93.3, 93.2, 93.3, 93.1]}).to_csv(sim, index=False)
    flash = tmp / "flash"
    flash.mkdir()
    pd.DataFrame({"config": ["naive", "+bundling"], "io_ms": [490.0, 11.0], "mm_ms": [0.0, 15.0],
                  "compute_ms": [135.0, 50.0]}).to_csv(flash / "flash_latency.csv", index=False)
    return write_report(tmp / "out", db=tmp / "dse.sqlite", sim=sim, flash_dir=flash)


def test_report_has_every_section(page):
    text = page.read_text()
    for needle in ("Table 7", "Fig. 12", "Fig. 13", "Table 10", "Table 11", "Fig. 14", "Design-space",
                   "Accuracy under noise", "LLM in a flash", "Assumptions", "20.44"):
        assert needle in text, needle
    assert len(list(page.parent.glob("*.png"))) == 9
    assert not list(page.parent.glob("*.partial*"))


def test_report_renders_in_headless_chromium(page, tmp_path):
    binary, driver_path = _chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        driver.get(page.as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth, "
            "i.naturalHeight])")
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        shot = tmp_path / "report.png"
        assert driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    assert len(images) == 9
    assert all(done and w > 0 and h > 0 for _, done, w, h in images), images
    assert errors == []
    assert shot.stat().st_size > 10_000


def test_report_bad_input(capsys, tmp_path):
    assert main(["report", "--db", str(tmp_path / "none.sqlite"), "--out", str(tmp_path / "r")]) == 2
    assert "none.sqlite: no such file" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
