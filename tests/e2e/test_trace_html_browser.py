"""The HTML trace page of a real (fake-tool) i2cr run, rendered by headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from fake_agent import RECORD, fake_agent
from PIL import Image

from groundgraph.agents.traces import load_run, render_html

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MAGENTA = (255, 0, 255)  # the input image's colour, to find it in the screenshot
GREEN, RED = (46, 139, 87), (192, 57, 43)  # passed / failed gate bars


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    profile.mkdir()
    return subprocess.run([CHROMIUM or "chromium", *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120, check=True)


def pixels_near(img: np.ndarray, rgb: tuple[int, int, int], tol: int = 12) -> int:
    return int((np.abs(img.astype(int) - np.array(rgb)).max(axis=2) <= tol).sum())


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (make system-deps)")
def test_trace_page_renders_rounds_image_and_gate_bars_in_chromium(tmp_path: Path) -> None:
    image = tmp_path / "mention.png"
    Image.new("RGB", (160, 120), MAGENTA).save(image)
    agent = fake_agent(tmp_path / "traces.sqlite", order=["Q2", "Q1"], inter=[0.0, 50.0])
    run_id = agent.invoke({**RECORD, "image": str(image)}).run_id
    page = tmp_path / "run.html"
    page.write_text(render_html(load_run(agent.store, run_id)), encoding="utf-8")

    dom = chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    assert dom.count('class="card round"') == 2
    assert "Round 2 · cue <b" in dom and "a woman smiling" in dom
    assert 'id="answer">Q2 (Roy Carroll)<' in dom
    assert 'id="input-image"' in dom and "data:image/png;base64," in dom
    assert dom.count("<svg") == 4 and ">fail<" in dom and ">pass<" in dom

    shot = tmp_path / "run.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,2000", "--hide-scrollbars", page.as_uri())
    assert shot.is_file() and shot.stat().st_size > 20_000
    with Image.open(shot) as im:
        assert im.size == (1200, 2000)
        pixels = np.asarray(im.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # text, cards and bars, not a blank page
    assert pixels_near(pixels, MAGENTA) > 0.8 * 160 * 120  # the embedded input image is shown
    assert pixels_near(pixels, GREEN) > 200 and pixels_near(pixels, RED) > 20  # passed and failed gate bars
