"""Agent: a graph plugin compiled with a toolbox and a run store. The Python entry point.

    agent = load_agent("i2cr", profile="cpu")
    result = agent.invoke({"mention": ..., "context": ..., "candidates": [...]})
    for event in agent.stream(record): ...
    agent.trace(result.run_id)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from groundgraph.agents.registry import graph_spec
from groundgraph.agents.runs import RunStore
from groundgraph.agents.settings import Settings, load_settings
from groundgraph.agents.toolbox import Toolbox
from groundgraph.graphs.base import GraphSpec
from groundgraph.tools.errors import ConfigError, GroundgraphError, InputError, ToolError

if TYPE_CHECKING:
    from groundgraph.agents.traces import Step


class TraceEvent(BaseModel):
    """One step a node took: what it decided and why, with scores and tool calls."""

    model_config = {"extra": "allow"}

    node: str
    round: int
    decision: str
    why: str
    scores: dict[str, Any] = {}
    inputs: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    time: float


class BatchItem(BaseModel):
    """One record's outcome in a batch: an output or an error, never both."""

    index: int
    id: str | None = None
    ok: bool
    output: dict[str, Any] | None = None
    error: str | None = None
    error_type: str | None = None


def validation_message(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors())


class Agent:
    """A compiled graph with its toolbox, config and (optionally) persistent traces."""

    def __init__(self, spec: GraphSpec, settings: Settings, *, toolbox: Toolbox | None = None,
                 store: RunStore | None = None, trace: bool | None = None, context: Any = None) -> None:
        """``context``: a ready run context (model handles) instead of the one built from the toolbox on
        first use; for tests with fake tools, or a host that shares loaded models between agents."""
        self.spec = spec
        self.settings = settings
        try:
            self.config = spec.config_model.model_validate(settings.graphs.get(spec.name, {}))
        except ValidationError as exc:
            raise ConfigError(f"invalid config for graph {spec.name}: {validation_message(exc)}") from None
        self.toolbox = toolbox or Toolbox(settings.tools, kb_source=str(settings.kb_source or "") or None)
        missing = [r for r in spec.tools if self.toolbox.get(r) is None]
        if missing:
            raise ConfigError(f"graph {spec.name} needs tools the {settings.profile} profile lacks: {missing}")
        keep = settings.trace.enabled if trace is None else trace
        self.store = store if store is not None else (RunStore(settings.trace.db) if keep else None)
        self.graph = spec.build().compile(checkpointer=self.store.checkpointer if self.store else None)
        self._context: Any = context

    @property
    def name(self) -> str:
        return self.spec.name

    def with_config(self, **overrides: Any) -> Agent:
        """The same agent (tools, models, trace store) with some graph config values changed."""
        graphs = {**self.settings.graphs, self.name: {**self.config.model_dump(), **overrides}}
        return Agent(self.spec, self.settings.model_copy(update={"graphs": graphs}), toolbox=self.toolbox,
                     store=self.store, trace=self.store is not None)

    @property
    def context(self) -> Any:
        """The run context (model handles), built once; models still load lazily on first use."""
        if self._context is None:
            tools = {r: self.toolbox.get(r) for r in (*self.spec.tools, *self.spec.optional_tools)}
            self._context = self.spec.make_context(tools, self.config)
        return self._context

    # --- input ------------------------------------------------------------------------------
    def validate(self, inp: Mapping[str, Any] | BaseModel) -> BaseModel:
        """Check one input against the graph's input model; InputError says what is wrong."""
        if isinstance(inp, self.spec.input_model):
            return inp
        if isinstance(inp, BaseModel):
            inp = inp.model_dump()
        if not isinstance(inp, Mapping):
            raise InputError(f"{self.name} input must be an object, got {type(inp).__name__}")
        try:
            return self.spec.input_model.model_validate(dict(inp))
        except ValidationError as exc:
            raise InputError(f"invalid {self.name} input: {validation_message(exc)}") from None

    def _run_config(self, run_id: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": run_id}, "recursion_limit": self.spec.recursion_limit(self.config),
                "metadata": {"graph": self.name, "profile": self.settings.profile}}

    # --- running ----------------------------------------------------------------------------
    def invoke(self, inp: Mapping[str, Any] | BaseModel, *, run_id: str | None = None) -> Any:
        """Run the graph on one input; returns the graph's output model (with its run id)."""
        model = self.validate(inp)
        run_id = run_id or uuid.uuid4().hex
        state = self.spec.initial_state(model, self.config)
        self._start(run_id, model)
        try:
            final = self.graph.invoke(state, config=self._run_config(run_id), context=self.context)
        except BaseException as exc:
            raise self._failed(run_id, exc) from exc
        return self._finish(run_id, final)

    def stream(self, inp: Mapping[str, Any] | BaseModel, *, run_id: str | None = None
               ) -> Iterator[dict[str, Any]]:
        """Yield progress as it happens: LangGraph v2 stream parts ``{"type", "ns", "data"}``
        ("updates" per node, "custom" progress messages), then ``{"type": "result", "data": output}``."""
        model = self.validate(inp)
        run_id = run_id or uuid.uuid4().hex
        state = self.spec.initial_state(model, self.config)
        self._start(run_id, model)
        final: dict[str, Any] = dict(state)
        try:
            for part in self.graph.stream(state, config=self._run_config(run_id), context=self.context,
                                          stream_mode=["updates", "custom", "values"], version="v2"):
                if part["type"] == "values":
                    final = part["data"]
                    continue
                yield part
        except BaseException as exc:
            raise self._failed(run_id, exc) from exc
        yield {"type": "result", "ns": (), "data": self._finish(run_id, final)}

    def batch(self, inputs: Iterable[Mapping[str, Any]], *, max_workers: int = 1,
              on_item: Callable[[BatchItem], None] | None = None) -> list[BatchItem]:
        """Run many inputs; a bad record becomes an error item and the others complete."""

        def one(pair: tuple[int, Mapping[str, Any]]) -> BatchItem:
            index, record = pair
            rid = record.get("id") if isinstance(record, Mapping) else None
            try:
                out = self.invoke(record)
                item = BatchItem(index=index, id=None if rid is None else str(rid), ok=True,
                                 output=out.model_dump(mode="json"))
            except GroundgraphError as exc:
                item = BatchItem(index=index, id=None if rid is None else str(rid), ok=False,
                                 error=str(exc), error_type=type(exc).__name__)
            if on_item:
                on_item(item)
            return item

        pairs = list(enumerate(inputs))
        if max_workers <= 1:
            return [one(p) for p in pairs]
        with ThreadPoolExecutor(max_workers=max_workers) as pool:
            return list(pool.map(one, pairs))

    def _start(self, run_id: str, model: BaseModel) -> None:
        if self.store:
            self.store.start(run_id, self.name, self.settings.profile, self.spec.summarize_input(model),
                             model.model_dump(mode="json"))

    def _finish(self, run_id: str, final: Mapping[str, Any]) -> Any:
        out = self.spec.read_output(final, run_id)
        if self.store:
            data = out.model_dump(mode="json")
            self.store.finish(run_id, answer_text(data), data.get("rounds"), data)
        return out

    def _failed(self, run_id: str, exc: BaseException) -> BaseException:
        if self.store:
            self.store.fail(run_id, f"{type(exc).__name__}: {exc}")
        if isinstance(exc, GroundgraphError | KeyboardInterrupt | SystemExit):
            return exc
        return ToolError(f"{self.name} run {run_id} failed: {type(exc).__name__}: {exc}")

    # --- traces -----------------------------------------------------------------------------
    def trace(self, run_id: str) -> list[TraceEvent]:
        """The typed trace events of a stored run, in order."""
        if self.store is None:
            raise ConfigError("this agent keeps no traces (trace disabled)")
        snap = self.graph.get_state({"configurable": {"thread_id": run_id}})
        if not snap.values:
            raise InputError(f"no run with id {run_id!r} in {self.store.path}")
        return [TraceEvent.model_validate(e) for e in snap.values.get("trace", [])]

    def history(self, run_id: str) -> list[Step]:
        """The steps of a stored run, oldest first (from ``get_state_history``): the node(s) that ran in
        each step, the trace events they added, and the state after it."""
        from groundgraph.agents.traces import history

        if self.store is None:
            raise ConfigError("this agent keeps no traces (trace disabled)")
        return history(self.graph, run_id)

    def resume(self, run_id: str) -> Any:
        """Finish a stored run that stopped part-way (a crash, a kill -9) from its last checkpoint, on the
        same run id: the steps already checkpointed are not run again. A finished run returns its output."""
        if self.store is None:
            raise ConfigError("resuming needs stored runs; this agent keeps no traces (trace disabled)")
        config = self._run_config(run_id)
        snap = self.graph.get_state(config)
        if not snap.values:
            raise InputError(f"no run with id {run_id!r} in {self.store.path}")
        if not snap.next and not snap.tasks:  # it had finished (perhaps only its record was not updated)
            return self._finish(run_id, snap.values)
        # otherwise the next nodes run; a node whose writes were saved before the crash is not run again
        try:  # None continues from the last checkpoint with the nodes that were next
            final = self.graph.invoke(None, config=config, context=self.context)
        except BaseException as exc:
            raise self._failed(run_id, exc) from exc
        return self._finish(run_id, final)

    def fork(self, run_id: str, step: int, updates: Mapping[str, Any] | None = None, *,
             new_run_id: str | None = None) -> Any:
        """Continue a stored run from the state after ``step`` with ``updates`` applied to it, as a new run.

        The new run (a new thread) starts from a copy of that step's checkpoint with the changes and runs
        the node(s) that were next in the parent run; the graph's edges decide from there. It is recorded
        with ``parent_run_id=run_id`` and returns the graph's output model like ``invoke``.
        """
        from groundgraph.agents.traces import start_fork

        if self.store is None:
            raise ConfigError("forking needs stored runs; this agent keeps no traces (trace disabled)")
        parent = self.store.get(run_id)
        new_run_id = new_run_id or uuid.uuid4().hex
        start = start_fork(self.graph, run_id, step, dict(updates or {}), new_run_id)
        summary = (parent.input_summary if parent else run_id) + f" (fork of {run_id} at step {step})"
        self.store.start(new_run_id, self.name, self.settings.profile, summary, parent.input if parent else {},
                         parent_run_id=run_id)
        try:  # None resumes from the copied checkpoint: the nodes that were next in the parent run
            final = self.graph.invoke(start, config=self._run_config(new_run_id), context=self.context)
        except BaseException as exc:
            raise self._failed(new_run_id, exc) from exc
        return self._finish(new_run_id, final)


def answer_text(output: Mapping[str, Any]) -> str | None:
    """A one-line answer for listings, from whatever shape the graph's output has."""
    for key in ("entity", "relation", "caption"):
        val = output.get(key)
        if isinstance(val, Mapping):
            return f"{val.get('id')} ({val.get('name')})"
        if val is not None:
            return str(val)[:200]
    if "spans" in output:
        return f"{len(output['spans'])} spans"
    return None


def load_agent(graph: str, profile: str | None = None, *, config: str | None = None, trace: bool | None = None,
               **overrides: Any) -> Agent:
    """Build the agent for ``graph`` on ``profile`` (default: cpu, or the config file's)."""
    return Agent(graph_spec(graph), load_settings(profile, config, **overrides), trace=trace)
