"""Geometric verification (ORB + SIFT + RANSAC) on the shipped news photographs."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from groundgraph.tools.errors import ConfigError, InputError
from groundgraph.tools.geometric import GeometricVerifier, OpenCVGeometricVerifier, _plausible

NEWS = Path(str(resources.files("groundgraph.agents") / "data" / "news" / "images"))
ROCKET, CAT, PALACE = (str(NEWS / f) for f in ("rocket.jpg", "chelsea.jpg", "summer_palace.jpg"))


@pytest.fixture(scope="module")
def verifier() -> OpenCVGeometricVerifier:
    return OpenCVGeometricVerifier()


@pytest.fixture(scope="module")
def crop(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("geo") / "rocket_crop.jpg"
    with Image.open(ROCKET) as im:
        im.convert("RGB").crop((120, 60, 520, 400)).resize((260, 221)).save(path, quality=35)
    return str(path)


def test_satisfies_the_protocol(verifier: OpenCVGeometricVerifier) -> None:
    assert isinstance(verifier, GeometricVerifier) and verifier.name == "geometric.opencv"


def test_a_rescaled_recompressed_crop_has_many_inliers_and_other_photos_few(verifier: OpenCVGeometricVerifier,
                                                                           crop: str) -> None:
    same, cat, palace = verifier.verify(crop, [ROCKET, CAT, PALACE])
    assert same.inliers >= 50, same
    assert cat.inliers < 25 and palace.inliers < 25
    assert {m.feature for m in same.by_feature} == {"orb", "sift"}
    assert same.inliers == sum(m.inliers for m in same.by_feature)
    assert 0 < same.inlier_ratio <= 1


def test_each_feature_type_alone_verifies_the_crop(crop: str) -> None:
    for feature in ("orb", "sift"):
        m = OpenCVGeometricVerifier(features=[feature]).verify(crop, [ROCKET])[0]
        assert m.inliers >= 20 and [f.feature for f in m.by_feature] == [feature]


def test_classic_ransac_works_too(crop: str) -> None:
    assert OpenCVGeometricVerifier(method="ransac").verify(crop, [ROCKET])[0].inliers >= 50


def test_a_blank_image_has_no_keypoints_and_no_inliers(verifier: OpenCVGeometricVerifier, tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 150), "white").save(blank)
    m = verifier.verify(str(blank), [ROCKET])[0]
    assert m.inliers == 0 and m.matches == 0 and not any(f.homography for f in m.by_feature)


def test_candidate_keypoints_are_cached_per_file(crop: str, monkeypatch: pytest.MonkeyPatch) -> None:
    v = OpenCVGeometricVerifier()
    detected: list[Any] = []
    real = v._detect
    monkeypatch.setattr(v, "_detect", lambda image: detected.append(image) or real(image))
    first = v.verify(crop, [ROCKET])
    second = v.verify(crop, [ROCKET])
    assert first == second
    assert len(detected) == 2  # the query and the candidate once; the second call hit the cache


def test_arrays_are_accepted_as_query(verifier: OpenCVGeometricVerifier, crop: str) -> None:
    with Image.open(crop) as im:
        arr = np.asarray(im.convert("RGB"))
    assert verifier.verify(arr, [ROCKET])[0].inliers >= 50


def test_small_images_are_enlarged_before_detection(verifier: OpenCVGeometricVerifier, tmp_path: Path) -> None:
    small = tmp_path / "small.png"
    with Image.open(ROCKET) as im:
        im.convert("RGB").crop((200, 100, 440, 340)).resize((110, 110)).save(small)
    assert verifier.verify(str(small), [ROCKET])[0].inliers >= 25
    assert OpenCVGeometricVerifier(min_side=0).verify(str(small), [ROCKET])[0].inliers < \
        verifier.verify(str(small), [ROCKET])[0].inliers


def test_bad_inputs_are_input_errors(verifier: OpenCVGeometricVerifier, tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"garbage")
    with pytest.raises(InputError):
        verifier.verify(ROCKET, [str(tmp_path / "bad.png")])
    with pytest.raises(InputError, match="not found"):
        verifier.verify(ROCKET, [str(tmp_path / "missing.png")])
    with pytest.raises(InputError, match="list of candidate"):
        verifier.verify(ROCKET, ROCKET)  # type: ignore[arg-type]


@pytest.mark.parametrize(("config", "match"), [
    ({"features": []}, "non-empty"), ({"features": ["orb", "orb"]}, "repeats"), ({"features": ["surf"]}, "features"),
    ({"device": "cuda"}, "CPU only"), ({"ratio": 1.5}, "ratio"),
])
def test_bad_configs_are_config_errors(config: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        OpenCVGeometricVerifier(config)


def test_degenerate_homographies_are_not_plausible() -> None:
    assert _plausible(np.eye(3))
    assert _plausible(np.diag([2.5, 2.5, 1.0]))
    assert not _plausible(np.diag([1e-4, 1e-4, 1.0]))  # everything collapsed to a point
    assert not _plausible(np.array([[1, 0, 0], [0, 1, 0], [0.2, 0, 1.0]]))  # a violent perspective fold
    assert not _plausible(np.full((3, 3), np.nan))


def test_langchain_tool_reports_inliers(verifier: OpenCVGeometricVerifier, crop: str) -> None:
    out = verifier.as_langchain_tool().invoke({"image_path": crop, "candidate_paths": [ROCKET, CAT]})
    assert out[0]["inliers"] > out[1]["inliers"]
