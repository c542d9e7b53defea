"""Geometric verification: do two images show the same scene? Local features (ORB, SIFT), Lowe's ratio
test, then a RANSAC homography (OpenCV's USAC MAGSAC++ by default); the inlier count is the evidence.

Used to re-rank image retrieval results: a crop, rescale or re-compression of an image keeps many
features that one homography maps onto the original, while a merely similar-looking image keeps few.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, Field, field_validator

from groundgraph.tools.base import Tool, ToolConfig, call_model, check_device
from groundgraph.tools.errors import InputError
from groundgraph.tools.images import ImageLike, load_image

Feature = Literal["orb", "sift"]
FEATURES: tuple[Feature, ...] = ("orb", "sift")


class FeatureMatch(BaseModel):
    """What one feature type found between the query and one candidate."""

    feature: str
    keypoints: tuple[int, int] = Field(description="keypoints in the query and in the candidate")
    matches: int = Field(description="matches passing Lowe's ratio test")
    inliers: int = Field(description="matches consistent with the fitted homography (0 if none was accepted)")
    homography: bool = Field(description="whether a plausible homography was found")


class GeometricMatch(BaseModel):
    """The geometric evidence that a candidate shows the query's scene."""

    inliers: int = Field(description="homography inliers summed over feature types")
    matches: int = Field(description="ratio-test matches summed over feature types")
    by_feature: list[FeatureMatch]

    @property
    def inlier_ratio(self) -> float:
        return self.inliers / self.matches if self.matches else 0.0


@runtime_checkable
class GeometricVerifier(Protocol):
    name: str

    def verify(self, query: ImageLike, candidates: Sequence[ImageLike]) -> list[GeometricMatch]:
        """One GeometricMatch per candidate, in order."""
        ...


class GeometricConfig(ToolConfig):
    features: list[Feature] = Field(default_factory=lambda: list(FEATURES), description="local feature types")
    n_features: int = Field(1000, ge=50, le=20000, description="keypoints kept per image and feature type")
    ratio: float = Field(0.75, gt=0.0, le=1.0, description="Lowe's ratio test threshold")
    method: Literal["usac_magsac", "ransac"] = Field("usac_magsac", description="robust homography estimator")
    reproj_threshold: float = Field(5.0, gt=0.0, description="max reprojection error of an inlier, in pixels")
    min_matches: int = Field(8, ge=4, description="fewer ratio-test matches than this: no homography is tried")
    max_side: int = Field(640, ge=64, le=4096, description="images are shrunk to this longest side first")
    min_side: int = Field(320, ge=0, le=4096,
                          description="smaller images are enlarged to this longest side (small crops keep keypoints)")
    cache_size: int = Field(512, ge=0, description="images whose keypoints are kept in memory")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        return check_device(v, cpu_only="geometric.opencv")

    @field_validator("features")
    @classmethod
    def _features(cls, v: list[str]) -> list[str]:
        if not v or len(set(v)) != len(v):
            raise ValueError("features must be a non-empty list without repeats")
        return v


_Keypoints = dict[str, tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]]  # feature -> (xy, descriptors)


class OpenCVGeometricVerifier(Tool[GeometricConfig]):
    """ORB and SIFT features, ratio-test matching and a robust homography per candidate (OpenCV)."""

    kind = "geometric"
    backend = "opencv"
    Config = GeometricConfig

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self._cache: OrderedDict[tuple[str, int, int], _Keypoints] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._detect_lock = threading.Lock()

    def _load(self) -> Any:
        import cv2

        create: Any = cv2  # the stubs of opencv-python 5 miss the feature factories
        detectors = {"orb": create.ORB_create(nfeatures=self.config.n_features),
                     "sift": create.SIFT_create(nfeatures=self.config.n_features)}
        matchers = {"orb": cv2.BFMatcher(cv2.NORM_HAMMING), "sift": cv2.BFMatcher(cv2.NORM_L2)}
        return {f: (detectors[f], matchers[f]) for f in self.config.features}

    # --- keypoints ------------------------------------------------------------------------------
    def _detect(self, image: ImageLike) -> _Keypoints:
        import cv2

        gray = np.asarray(load_image(image).convert("L"))
        h, w = gray.shape
        scale = min(1.0, self.config.max_side / max(h, w))
        if max(h, w) < self.config.min_side:
            scale = self.config.min_side / max(h, w)
        if scale != 1.0:
            gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))),
                              interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        out: _Keypoints = {}
        models = self.model()
        # detectors are not documented as thread-safe: one image at a time per tool
        with self._detect_lock:
            for feature, (detector, _) in models.items():
                kps, desc = detector.detectAndCompute(gray, None)
                xy = np.array([kp.pt for kp in kps], dtype=np.float32).reshape(-1, 2)
                out[feature] = (xy, desc)
        return out

    def _keypoints(self, image: ImageLike) -> _Keypoints:
        """Keypoints of an image; those of files are cached (corpus images are verified again and again)."""
        if not isinstance(image, str | Path):
            return self._detect(image)
        p = Path(image)
        try:
            st = p.stat()
        except OSError:
            raise InputError(f"image file not found: {p}") from None
        key = (str(p.resolve()), st.st_mtime_ns, st.st_size)
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        found = self._detect(p)
        if self.config.cache_size:
            with self._cache_lock:
                self._cache[key] = found
                while len(self._cache) > self.config.cache_size:
                    self._cache.popitem(last=False)
        return found

    # --- matching -------------------------------------------------------------------------------
    def _match(self, feature: str, query: tuple[Any, Any], cand: tuple[Any, Any]) -> FeatureMatch:
        import cv2

        (qxy, qd), (cxy, cd) = query, cand
        keypoints = (len(qxy), len(cxy))
        if qd is None or cd is None or len(qd) < 2 or len(cd) < 2:
            return FeatureMatch(feature=feature, keypoints=keypoints, matches=0, inliers=0, homography=False)
        _, matcher = self.model()[feature]
        good = [p[0] for p in matcher.knnMatch(qd, cd, k=2)
                if len(p) == 2 and p[0].distance < self.config.ratio * p[1].distance]
        if len(good) < self.config.min_matches:
            return FeatureMatch(feature=feature, keypoints=keypoints, matches=len(good), inliers=0, homography=False)
        src = qxy[[m.queryIdx for m in good]].reshape(-1, 1, 2)
        dst = cxy[[m.trainIdx for m in good]].reshape(-1, 1, 2)
        method = cv2.USAC_MAGSAC if self.config.method == "usac_magsac" else cv2.RANSAC
        H, mask = cv2.findHomography(src, dst, method, self.config.reproj_threshold)
        ok = H is not None and mask is not None and _plausible(H)
        inliers = int(mask.sum()) if ok else 0
        return FeatureMatch(feature=feature, keypoints=keypoints, matches=len(good), inliers=inliers, homography=ok)

    def verify(self, query: ImageLike, candidates: Sequence[ImageLike]) -> list[GeometricMatch]:
        """Match the query against each candidate; candidates given as paths have their keypoints cached."""
        if isinstance(candidates, str | Path):
            raise InputError("verify() takes a list of candidate images, not a single image")
        q = call_model(self, lambda: self._keypoints(query), "detect keypoints")
        out = []
        for cand in candidates:
            c = call_model(self, lambda cand=cand: self._keypoints(cand), "detect keypoints")
            per = [call_model(self, lambda f=f, c=c: self._match(f, q[f], c[f]), "match keypoints") for f in q]
            out.append(GeometricMatch(inliers=sum(m.inliers for m in per), matches=sum(m.matches for m in per),
                                      by_feature=per))
        return out

    def as_langchain_tool(self) -> Any:
        from langchain_core.tools import StructuredTool

        class Args(BaseModel):
            image_path: str = Field(description="path of the query image")
            candidate_paths: list[str] = Field(description="paths of images that may show the same scene")

        def match_images(image_path: str, candidate_paths: list[str]) -> list[dict[str, Any]]:
            found = self.verify(image_path, candidate_paths)
            return [{"image": p, "inliers": m.inliers, "matches": m.matches}
                    for p, m in zip(candidate_paths, found, strict=True)]

        return StructuredTool.from_function(
            match_images, name="match_images",
            description="Check whether images show the same scene (a crop, rescale or copy): the number of "
            "ORB/SIFT keypoint matches consistent with one homography; tens or more means the same picture.",
            args_schema=Args)


def _plausible(H: np.ndarray[Any, Any]) -> bool:
    """A homography that a crop, rescale or mild perspective change could produce (not a degenerate fold)."""
    if not np.all(np.isfinite(H)):
        return False
    det = float(np.linalg.det(H[:2, :2]))
    return bool(1e-3 < det < 1e3 and abs(H[2, 0]) < 0.01 and abs(H[2, 1]) < 0.01)
