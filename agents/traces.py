"""Trace viewers for every graph: run listings, step tables, a self-contained HTML page, forks.

The viewers read only what every graph writes: the ``groundgraph_runs`` index and the ``trace``
events in the checkpointed state (node, round, decision, why, scores, tool calls, and extra keys
such as ``cue``, ``cue_text`` or ``entity_id``). Graph-specific touches (a round's cue, the
candidate chosen) appear only when an event carries those keys.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointMetadata, create_checkpoint
from langgraph.graph.state import CompiledStateGraph
from pydantic import BaseModel
from rich.console import Group
from rich.table import Table
from rich.text import Text

from groundgraph.agents.agent import TraceEvent
from groundgraph.agents.registry import graph_spec
from groundgraph.agents.runs import RunRecord, RunStore
from groundgraph.tools.errors import InputError

#: the input image is embedded up to this size; larger or exotic files are re-encoded smaller
MAX_IMAGE_BYTES = 1_500_000
IMAGE_MAX_SIDE = 720
_WEB_IMAGE_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}
#: event keys shown as a card's extras when present (generic: any other key is shown too)
_BASE_KEYS = {"node", "round", "decision", "why", "scores", "inputs", "tool_calls", "time"}


# --- steps (get_state_history) ------------------------------------------------------------------
class Step(BaseModel):
    """One superstep of a run: the node(s) that ran, the events they added, the state after it."""

    step: int
    source: str  # "input", "loop" or "update" (a fork's copied state)
    ran: list[str]
    next: list[str]
    checkpoint_id: str
    created_at: str | None = None
    events: list[TraceEvent] = []
    values: dict[str, Any] = {}


def _config(run_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": run_id}}


def history(graph: CompiledStateGraph[Any, Any, Any, Any], run_id: str) -> list[Step]:
    """The steps of a stored run, oldest first; InputError when the store has no such run."""
    snaps = list(graph.get_state_history(_config(run_id)))[::-1]
    if not snaps:
        raise InputError(f"no run with id {run_id!r} in the trace store")
    steps: list[Step] = []
    seen = 0
    for i, snap in enumerate(snaps):
        trace = snap.values.get("trace", []) if isinstance(snap.values, Mapping) else []
        new = trace[seen:] if len(trace) >= seen else trace
        seen = len(trace)
        meta = snap.metadata or {}
        source = str(meta.get("source", "loop"))
        # a fork's first step holds the state copied from its parent run (and the parent's events)
        ran = ["__input__"] if source == "input" else (["__fork__"] if source in ("fork", "update") else
                                                       list(snaps[i - 1].next) if i else [])
        steps.append(Step(step=int(meta.get("step", i - 1)), source=source, ran=ran, next=list(snap.next),
                          checkpoint_id=str(snap.config["configurable"].get("checkpoint_id", "")),
                          created_at=snap.created_at, events=[TraceEvent.model_validate(e) for e in new],
                          values=dict(snap.values)))
    return steps


def _state_keys(graph: CompiledStateGraph[Any, Any, Any, Any]) -> set[str]:
    schema = getattr(graph.builder, "state_schema", None)
    return set(getattr(schema, "__annotations__", {}) or {})


def start_fork(graph: CompiledStateGraph[Any, Any, Any, Any], run_id: str, step: int, updates: dict[str, Any],
               new_run_id: str) -> dict[str, Any] | None:
    """Write the first checkpoint of a fork of ``run_id``: the state after ``step`` with ``updates`` and a
    ``fork`` trace event, on the new thread ``new_run_id``. Returns None when the new run resumes from that
    checkpoint (``invoke(None)`` runs the nodes that were next in the parent), or the input to start it
    with when the fork is before any node ran.

    The checkpoint is copied without the parent's pending writes, so the next nodes run again on the
    changed state instead of replaying what they wrote in the parent run.
    """
    steps = history(graph, run_id)
    by_step = {s.step: s for s in steps if s.source not in ("fork", "update")}
    if step not in by_step:
        raise InputError(f"run {run_id} has no step {step}; its steps are {min(by_step)}..{max(by_step)}")
    chosen = by_step[step]
    if not chosen.next:
        raise InputError(f"step {step} is the last of run {run_id}: nothing runs after it; fork an earlier step")
    keys = _state_keys(graph)
    unknown = sorted(k for k in updates if keys and k not in keys)
    if unknown:
        raise InputError(f"unknown state key(s) {unknown}; the state has: {', '.join(sorted(keys))}")
    round_ = {**chosen.values, **updates}.get("round")
    what = ", ".join(f"{k}={_short(v, 60)}" for k, v in updates.items()) or "no changes"
    fork_event = {"node": "fork", "round": round_ if isinstance(round_, int) else 0,
                  "decision": f"forked from {run_id} at step {step}", "why": f"set {what}", "scores": {},
                  "inputs": [], "tool_calls": [], "time": time.time(), "parent_run_id": run_id,
                  "parent_step": step, "updates": sorted(updates)}
    changed = {**updates, "trace": [*chosen.values.get("trace", []), fork_event]}
    if chosen.next == ["__start__"]:  # nothing ran yet: the changed input starts the new run
        return {**chosen.values, **changed}
    saver = graph.checkpointer
    if not isinstance(saver, BaseCheckpointSaver):
        raise InputError("forking needs a graph compiled with a checkpointer")
    parent = saver.get_tuple({"configurable": {"thread_id": run_id, "checkpoint_ns": "",
                                               "checkpoint_id": chosen.checkpoint_id}})
    if parent is None:
        raise InputError(f"checkpoint of step {step} of run {run_id} is missing from the store")
    checkpoint = create_checkpoint(parent.checkpoint, None, chosen.step)
    checkpoint["channel_values"] = {**checkpoint["channel_values"], **changed}
    metadata: CheckpointMetadata = {"source": "fork", "step": chosen.step, "parents": {}}
    saver.put({"configurable": {"thread_id": new_run_id, "checkpoint_ns": ""}}, checkpoint,
              {**metadata, "parent_run_id": run_id, "parent_step": step},  # type: ignore[typeddict-unknown-key]
              checkpoint["channel_versions"])
    return None


def parse_updates(pairs: Iterable[str]) -> dict[str, Any]:
    """``key=value`` pairs from the command line; a value that parses as JSON is taken as JSON."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set wants key=value, got {pair!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


# --- loading a run --------------------------------------------------------------------------------
class RunView(BaseModel):
    """Everything the viewers show about one run."""

    run_id: str
    graph: str
    record: RunRecord | None
    steps: list[Step]

    @property
    def events(self) -> list[TraceEvent]:
        return [e for s in self.steps for e in s.events]

    @property
    def final(self) -> dict[str, Any]:
        return self.steps[-1].values if self.steps else {}


def stored_graph(graph: str, store: RunStore) -> CompiledStateGraph[Any, Any, Any, Any]:
    """A graph compiled over the store, for reading its checkpoints (no tools, no models)."""
    return graph_spec(graph).build().compile(checkpointer=store.checkpointer)


def load_run(store: RunStore, run_id: str, graph: str | None = None) -> RunView:
    """The run's record and steps; the graph comes from the record unless given."""
    try:
        run_id.encode("utf-8")
    except UnicodeEncodeError:  # e.g. undecodable bytes from a command line: no stored id looks like that
        raise InputError(f"no run with id {run_id!r}: a run id is plain text") from None
    record = store.get(run_id)
    name = graph or (record.graph if record else None)
    if name is None:
        raise InputError(f"no run with id {run_id!r} in {store.path}; `groundgraph trace list` shows the runs")
    return RunView(run_id=run_id, graph=name, record=record, steps=history(stored_graph(name, store), run_id))


# --- scores -------------------------------------------------------------------------------------
class Score(BaseModel):
    """A score as the viewers draw it: a value, and a threshold with pass/fail when it is a gate."""

    name: str
    value: float | None
    threshold: float | None = None
    passed: bool | None = None
    extra: str = ""

    @property
    def is_gate(self) -> bool:
        return self.threshold is not None


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) else None


def scores_of(event: TraceEvent) -> list[Score]:
    """An event's scores as ``Score`` rows; accepts {value, threshold, passed} dicts or plain numbers."""
    rows: list[Score] = []
    for name, raw in (event.scores or {}).items():
        if isinstance(raw, Mapping):
            rest = {k: v for k, v in raw.items() if k not in ("value", "threshold", "passed")}
            passed = raw.get("passed")
            rows.append(Score(name=str(name), value=_num(raw.get("value")), threshold=_num(raw.get("threshold")),
                              passed=passed if isinstance(passed, bool) else None,
                              extra=", ".join(f"{k}={_short(v, 30)}" for k, v in rest.items())))
        else:
            rows.append(Score(name=str(name), value=_num(raw), extra="" if _num(raw) is not None else _short(raw, 40)))
    return rows


def _fmt(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.4g}"


def score_text(score: Score) -> str:
    """One line: ``intra 0.41 >= 0.3 pass`` for a gate, ``Q42 3.1`` for a plain number."""
    if not score.is_gate:
        return f"{score.name} {_fmt(score.value) if score.value is not None else score.extra}"
    if score.value is None:
        return f"{score.name} n/a vs {_fmt(score.threshold)} (unverifiable)"
    verdict = {True: "pass", False: "FAIL", None: "?"}[score.passed]
    op = ">=" if score.passed else "<" if score.passed is False else "vs"
    return f"{score.name} {_fmt(score.value)} {op} {_fmt(score.threshold)} {verdict}"


def tool_call_text(call: Mapping[str, Any]) -> str:
    latency = call.get("latency_ms")
    ms = f" {latency:.1f} ms" if isinstance(latency, int | float) else ""
    return f"{call.get('tool', '?')}.{call.get('what', 'call')}{ms}"


def _short(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def extras_of(event: TraceEvent) -> dict[str, Any]:
    """The event's graph-specific keys (cue, cue_text, entity_id, ...), in their written order."""
    return {k: v for k, v in event.model_dump().items() if k not in _BASE_KEYS and v not in (None, "", [], {})}


# --- text views -----------------------------------------------------------------------------------
def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def runs_table(records: Sequence[RunRecord]) -> Table:
    """Recent runs: graph, input summary, answer, rounds, status, time."""
    table = Table("run id", "graph", "input", "answer", "rounds", "status", "started", "took s",
                  title="recent runs" if records else "no runs stored yet")
    for r in records:
        took = f"{r.finished - r.started:.2f}" if r.finished else "-"
        status = r.status + (f" (fork of {r.parent_run_id[:8]})" if r.parent_run_id else "")
        table.add_row(r.run_id, r.graph, _short(r.input_summary, 60), _short(r.answer or r.error or "-", 50),
                      "-" if r.rounds is None else str(r.rounds), status, _when(r.started), took)
    return table


def run_header(view: RunView) -> Text:
    r = view.record
    lines = [f"run {view.run_id}  graph {view.graph}"]
    if r:
        lines.append(f"status {r.status}, profile {r.profile}, started {_when(r.started)}"
                     + (f", took {r.finished - r.started:.2f} s" if r.finished else ""))
        lines.append(f"input: {r.input_summary}")
        rounds = f"  rounds: {r.rounds}" if r.rounds is not None else ""
        lines.append(f"answer: {r.answer or r.error or '-'}{rounds}")
        if r.parent_run_id:
            lines.append(f"forked from run {r.parent_run_id}")
    return Text("\n".join(lines))


def steps_table(view: RunView) -> Table:
    """One row per step (and per event within it): node, round, decision, scores vs thresholds, tool calls."""
    table = Table("step", "node", "round", "decision", "scores (value vs threshold)", "tool calls (latency)", "why",
                  title=f"steps of run {view.run_id}", show_lines=True)
    for s in view.steps:
        if not s.events:
            table.add_row(str(s.step), ", ".join(s.ran) or "-", "", "", "", "",
                          f"next: {', '.join(s.next) or 'end'}", style="dim")
        for e in s.events:
            scores = "\n".join(score_text(x) for x in scores_of(e))
            calls = "\n".join(tool_call_text(c) for c in e.tool_calls)
            extras = extras_of(e)
            why = e.why + ("".join(f"\n{k}: {_short(v, 80)}" for k, v in extras.items()) if extras else "")
            table.add_row(str(s.step), e.node, str(e.round), e.decision, scores, calls, why)
    return table


def text_view(view: RunView) -> Group:
    return Group(run_header(view), steps_table(view))


def view_json(view: RunView) -> dict[str, Any]:
    """The run as JSON for ``--json``: record and steps with their events (no full state)."""
    return {"run_id": view.run_id, "graph": view.graph,
            "record": view.record.model_dump(mode="json") if view.record else None,
            "steps": [s.model_dump(mode="json", exclude={"values"}) for s in view.steps]}


# --- HTML -------------------------------------------------------------------------------------------
def image_data_uri(path: str | Path, max_bytes: int = MAX_IMAGE_BYTES) -> tuple[str | None, str]:
    """A data URI of the image (re-encoded smaller when large or not a web format), and a note."""
    from PIL import Image

    p = Path(path)
    try:
        raw = p.read_bytes()
        with Image.open(io.BytesIO(raw)) as im:
            fmt = im.format or ""
            if fmt in _WEB_IMAGE_TYPES and len(raw) <= max_bytes:
                return f"data:{_WEB_IMAGE_TYPES[fmt]};base64,{base64.b64encode(raw).decode()}", f"{p.name}"
            small = im.convert("RGB")
            small.thumbnail((IMAGE_MAX_SIDE, IMAGE_MAX_SIDE))
            buf = io.BytesIO()
            small.save(buf, "JPEG", quality=80)
            data = buf.getvalue()
    except Exception as exc:  # a viewer never fails on the image: it says why it is missing
        return None, f"image {p.name} not embedded ({type(exc).__name__})"
    if len(data) > max_bytes:
        return None, f"image {p.name} not embedded (over {max_bytes} bytes even re-encoded)"
    return f"data:image/jpeg;base64,{base64.b64encode(data).decode()}", f"{p.name} (re-encoded for the page)"


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _bar_svg(score: Score) -> str:
    """A horizontal bar for the value with a tick at the threshold; green passes, red fails."""
    w, h = 240, 18
    vals = [v for v in (score.value, score.threshold) if v is not None]
    lo = min(0.0, *vals) if vals else 0.0
    hi = max(vals) if vals else 1.0
    hi = hi + 0.25 * abs(hi - lo) if hi > lo else lo + 1.0
    def x(v: float) -> float:
        return round((v - lo) / (hi - lo) * w, 1)
    color = {True: "#2e8b57", False: "#c0392b", None: "#7f8c8d"}[score.passed]
    parts = [f'<svg class="bar" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
             f'aria-label="{_e(score_text(score))}"><rect x="0" y="3" width="{w}" height="{h - 6}" fill="#eceff1"/>']
    if score.value is not None:
        x0, x1 = sorted((x(0.0), x(score.value)))
        parts.append(f'<rect x="{x0}" y="3" width="{max(x1 - x0, 1.5)}" height="{h - 6}" fill="{color}"/>')
    if score.threshold is not None:
        tx = x(score.threshold)
        parts.append(f'<line x1="{tx}" y1="0" x2="{tx}" y2="{h}" stroke="#222" stroke-width="2"/>')
    parts.append("</svg>")
    return "".join(parts)


def _score_rows(event: TraceEvent) -> str:
    rows = scores_of(event)
    if not rows:
        return ""
    plain = [r for r in rows if not r.is_gate and r.value is not None]
    top = max((abs(r.value) for r in plain if r.value is not None), default=1.0) or 1.0
    out = ['<table class="scores">']
    for r in rows:
        if r.is_gate:
            verdict = {True: "pass", False: "fail", None: "n/a"}[r.passed]
            out.append(f'<tr class="gate {verdict.replace("/", "")}"><th>{_e(r.name)}</th><td>{_bar_svg(r)}</td>'
                       f'<td class="num">{_e(_fmt(r.value))} <span class="vs">vs threshold</span> '
                       f'{_e(_fmt(r.threshold))} <b class="verdict">{verdict}</b>'
                       f'{" <small>" + _e(r.extra) + "</small>" if r.extra else ""}</td></tr>')
        elif r.value is not None:
            pct = round(100 * abs(r.value) / top, 1)
            out.append(f'<tr class="plain"><th>{_e(r.name)}</th><td><div class="pbar"><div style="width:{pct}%">'
                       f'</div></div></td><td class="num">{_e(_fmt(r.value))}</td></tr>')
        else:
            out.append(f'<tr class="plain"><th>{_e(r.name)}</th><td></td><td>{_e(r.extra)}</td></tr>')
    out.append("</table>")
    return "".join(out)


def _event_html(event: TraceEvent) -> str:
    extras = extras_of(event)
    cue = ""
    if "cue" in extras:
        cue = (f'<div class="cue"><span class="label">cue added</span> <b>{_e(extras.pop("cue"))}</b>'
               + (f'<blockquote>{_e(extras.pop("cue_text"))}</blockquote>' if "cue_text" in extras else "")
               + "</div>")
    calls = "".join(f"<li>{_e(tool_call_text(c))}</li>" for c in event.tool_calls)
    extra_rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_short(v, 300))}</td></tr>" for k, v in extras.items())
    return (f'<div class="event node-{_e(event.node)}"><div class="head"><span class="node">{_e(event.node)}</span> '
            f'<span class="decision">{_e(event.decision)}</span></div>'
            f'<div class="why">{_e(event.why)}</div>{cue}{_score_rows(event)}'
            + (f'<ul class="calls">{calls}</ul>' if calls else "")
            + (f'<table class="extras">{extra_rows}</table>' if extra_rows else "") + "</div>")


def _chosen(events: list[TraceEvent]) -> str | None:
    """The round's chosen candidate, when the graph's events name one (i2cr's select)."""
    for e in events:
        if e.node == "select" and e.decision.startswith("selected "):
            return e.decision.removeprefix("selected ")
    return None


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,'DejaVu Sans',sans-serif;margin:0;background:#f5f6f8;color:#1d2733}
header{background:#1d2733;color:#fff;padding:16px 24px}header h1{margin:0 0 4px;font-size:20px}
header .meta{opacity:.85}main{padding:16px 24px;max-width:1100px}
.summary{display:flex;gap:20px;align-items:flex-start;background:#fff;border-radius:8px;padding:16px;
box-shadow:0 1px 3px rgba(0,0,0,.12);margin-bottom:16px}
.summary img{max-width:320px;max-height:320px;border-radius:6px}.answer{font-size:18px;font-weight:600}
.card{background:#fff;border-radius:8px;padding:12px 16px;margin-bottom:14px;box-shadow:0 1px 3px rgba(0,0,0,.12);
border-left:6px solid #3b82f6}.card h2{margin:0 0 8px;font-size:16px}.card .chosen{font-weight:600;color:#1e40af}
.event{border-top:1px solid #e5e7eb;padding:8px 0}.event .node{display:inline-block;background:#e0e7ff;color:#1e3a8a;
border-radius:4px;padding:1px 6px;font-family:monospace}.event .decision{font-weight:600}.why{color:#4b5563}
.cue{background:#fefce8;border-radius:4px;padding:6px 8px;margin:6px 0}.cue blockquote{margin:4px 0 0 8px;color:#555}
.label{font-size:12px;text-transform:uppercase;color:#92400e}table{border-collapse:collapse}
.scores th,.extras th{text-align:left;padding:2px 10px 2px 0;font-weight:500;color:#374151;vertical-align:top}
.scores td,.extras td{padding:2px 8px 2px 0}.num{font-family:monospace}.vs{color:#6b7280;font-size:12px}
.gate.pass .verdict{color:#2e8b57}.gate.fail .verdict{color:#c0392b}.gate.na .verdict{color:#7f8c8d}
.pbar{width:160px;height:10px;background:#eceff1}.pbar div{height:10px;background:#6366f1}
.calls{margin:4px 0;padding-left:18px;color:#374151;font-family:monospace;font-size:12px}
.steps{width:100%;background:#fff;font-size:12px}.steps td,.steps th{border-bottom:1px solid #e5e7eb;padding:3px 6px;
text-align:left}
"""


def render_html(view: RunView, *, max_image_bytes: int = MAX_IMAGE_BYTES) -> str:
    """One self-contained page (inline CSS and SVG, no scripts, no external assets) for a run."""
    r = view.record
    image_html = ""
    image = (r.input.get("image") if r else None) or view.final.get("image")
    if isinstance(image, str) and image:
        uri, note = image_data_uri(image, max_image_bytes)
        image_html = (f'<figure><img id="input-image" alt="input image" src="{uri}"><figcaption>{_e(note)}'
                      f"</figcaption></figure>" if uri else f'<p class="why">{_e(note)}</p>')
    answer = (r.answer or r.error or "-") if r else "-"
    meta = [f"graph <b>{_e(view.graph)}</b>", f"run <code>{_e(view.run_id)}</code>"]
    if r:
        meta += [f"status {_e(r.status)}", f"profile {_e(r.profile)}", f"started {_e(_when(r.started))}"]
        if r.parent_run_id:
            meta.append(f"fork of <code>{_e(r.parent_run_id)}</code>")
    summary = (f'<section class="summary">{image_html}<div><div class="label">input</div>'
               f'<p id="input-summary">{_e(r.input_summary if r else "-")}</p><div class="label">answer</div>'
               f'<p class="answer" id="answer">{_e(answer)}</p>'
               + (f"<p>rounds: {r.rounds}</p>" if r and r.rounds is not None else "") + "</div></section>")
    by_round: dict[int, list[TraceEvent]] = {}
    for e in view.events:
        by_round.setdefault(e.round, []).append(e)
    cards = []
    for rnd in sorted(by_round):
        events = by_round[rnd]
        chosen = _chosen(events)
        cue = next((e.model_dump().get("cue") for e in events if e.model_dump().get("cue")), None)
        subtitle = "".join([f' · cue <b class="cue-name">{_e(cue)}</b>' if cue else "",
                            f' · chosen <span class="chosen">{_e(chosen)}</span>' if chosen else ""])
        cards.append(f'<section class="card round" data-round="{rnd}"><h2>Round {rnd}{subtitle}</h2>'
                     + "".join(_event_html(e) for e in events) + "</section>")
    rows = "".join(f"<tr><td>{s.step}</td><td>{_e(', '.join(s.ran))}</td><td>{_e(', '.join(s.next) or 'end')}</td>"
                   f"<td>{len(s.events)}</td></tr>" for s in view.steps)
    steps = (f'<h2>Steps</h2><table class="steps"><tr><th>step</th><th>ran</th><th>next</th><th>events</th></tr>'
             f"{rows}</table>")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(view.graph)} run {_e(view.run_id)}</title><style>{_CSS}</style></head><body>"
            f'<header><h1>{_e(view.graph)} run</h1><div class="meta">{" · ".join(meta)}</div></header><main>'
            f"{summary}{''.join(cards) or '<p>no trace events</p>'}{steps}</main></body></html>")
