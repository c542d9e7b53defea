"""What every tool shares: a typed config, an explicit device and lazy, thread-safe model loading."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from groundgraph.tools.errors import ConfigError, GroundgraphError, ToolError, ToolUnavailableError


class ToolConfig(BaseModel):
    """Base config of a tool backend; unknown keys are errors so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    device: str = "cpu"


C = TypeVar("C", bound=ToolConfig)


class Tool(Generic[C]):
    """A backend of one capability (``kind``), built from its config, loading its model lazily."""

    kind: ClassVar[str] = ""
    backend: ClassVar[str] = ""
    Config: ClassVar[type[ToolConfig]] = ToolConfig
    #: other tools this backend is built with, by role; passed to __init__ as keyword arguments
    needs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: C | dict[str, Any] | None = None, **overrides: Any) -> None:
        self.config: C = self.make_config(config, **overrides)  # type: ignore[assignment]
        self._model: Any = None
        self._lock = threading.Lock()
        self.load_seconds: float | None = None

    @classmethod
    def make_config(cls, config: ToolConfig | dict[str, Any] | None = None, **overrides: Any) -> ToolConfig:
        if isinstance(config, cls.Config) and not overrides:
            return config
        data = dict(config.model_dump() if isinstance(config, BaseModel) else (config or {}))
        data.update(overrides)
        data.pop("backend", None)  # the registry key, not a field of the backend
        try:
            return cls.Config.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"invalid config for {cls.kind}.{cls.backend}: {problems}") from None

    @property
    def name(self) -> str:
        return f"{self.kind}.{self.backend}"

    @property
    def device(self) -> str:
        return self.config.device

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _load(self) -> Any:
        """Build the underlying model; called once, on first use."""
        return True

    def model(self) -> Any:
        """The loaded model, loading it on first call (thread-safe)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    start = time.perf_counter()
                    try:
                        model = self._load()
                    except GroundgraphError:
                        raise
                    except ImportError as exc:
                        raise ToolUnavailableError(
                            f"{self.name} needs a package that is not installed: {exc}"
                        ) from exc
                    except Exception as exc:  # a model that fails to load is a tool problem
                        raise ToolUnavailableError(f"{self.name} could not load its model: {exc}") from exc
                    self.load_seconds = time.perf_counter() - start
                    self._model = model
        return self._model

    def load(self) -> Tool[C]:
        """Load the model now (warm-up) and return self."""
        self.model()
        return self

    def describe(self) -> dict[str, Any]:
        return {"tool": self.name, "device": self.device, "config": self.config.model_dump(mode="json")}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} device={self.device} loaded={self.loaded}>"


def call_model(tool: Tool[Any], fn: Callable[[], Any], what: str) -> Any:
    """Run a model call, turning an unexpected exception into a ToolError that names the tool."""
    try:
        return fn()
    except GroundgraphError:
        raise
    except Exception as exc:
        raise ToolError(f"{tool.name} failed to {what}: {type(exc).__name__}: {exc}") from exc


_DEVICE = re.compile(r"cpu|cuda(:\d+)?")


def check_device(device: str, cpu_only: str | None = None) -> str:
    """Validate a device name; ``cpu_only`` names a backend that runs on the CPU alone."""
    if cpu_only and device != "cpu":
        raise ValueError(f"{cpu_only} runs on the CPU only; set device = 'cpu' (got {device!r})")
    if not _DEVICE.fullmatch(device):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return device


def require_cuda(device: str, tool: str) -> None:
    """A CUDA device that is asked for but absent is an error, never a silent fallback to CPU."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ToolUnavailableError(f"{tool} is configured for {device} but no CUDA device is available")
