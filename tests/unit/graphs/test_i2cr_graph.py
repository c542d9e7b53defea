"""The i2cr graph with fake tools: gates at their boundaries, the loop bounds, the no-image rule."""

from __future__ import annotations

from typing import Any

import pytest
from i2cr_fakes import CANDIDATES, CUES, make_ctx
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.runtime import Runtime

from groundgraph.graphs.i2cr import nodes
from groundgraph.graphs.i2cr.graph import build, initial_state
from groundgraph.graphs.i2cr.state import I2CRInput


def run(ctx: Any, **inp: Any) -> dict[str, Any]:
    record = {"mention": "Carroll Baker", "context": "Carroll Baker in the swing scene",
              "candidates": CANDIDATES, "visual_cues": CUES, **inp}
    graph = build().compile(checkpointer=InMemorySaver())
    state = initial_state(I2CRInput.model_validate(record), ctx.config)
    return graph.invoke(state, {"configurable": {"thread_id": "t"}, "recursion_limit": 60}, context=ctx)


def test_accepts_when_inter_gate_passes_in_round_one() -> None:
    out = run(make_ctx(["Q1", "Q2"], [31.0], alpha=-1.0))
    assert out["result"]["entity"]["id"] == "Q1"
    assert out["result"]["accepted_by"] == "inter_modal"
    assert out["result"]["rounds"] == 1
    assert [g["gate"] for g in out["gates"]] == ["intra", "inter"]


def test_inter_gate_boundary_is_inclusive() -> None:
    ctx = make_ctx(["Q1"], [30.999], alpha=-1.0, beta=31.0, max_rounds=1)
    out = run(ctx)
    assert out["result"]["accepted_by"] == "fallback"
    ctx = make_ctx(["Q1"], [31.0], alpha=-1.0, beta=31.0, max_rounds=1)
    assert run(ctx)["result"]["accepted_by"] == "inter_modal"


def test_failed_inter_gate_adds_one_nonempty_cue_per_round() -> None:
    ctx = make_ctx(["Q2", "Q1"], [0.0, 0.0, 50.0], alpha=-1.0)
    out = run(ctx)
    # ocr is empty in CUES, so round 2 adds the caption, round 3 the dense captions
    assert out["result"]["cues_used"] == ["caption", "dense_captions"]
    assert out["result"]["rounds"] == 3
    assert [c["cues"] for c in ctx.scorer.calls] == [{}, {"caption": CUES["caption"]},
                                                     {"caption": CUES["caption"],
                                                      "dense_captions": CUES["dense_captions"]}]


def test_no_round_passes_falls_back_to_text_only_choice() -> None:
    ctx = make_ctx(["Q2", "Q1"], [0.0], alpha=-1.0, max_rounds=5)
    out = run(ctx)
    assert out["result"]["accepted_by"] == "fallback"
    assert out["result"]["entity"]["id"] == "Q2"
    assert out["result"]["rounds"] == 4  # three non-empty cues, then none left
    assert "text only" in out["trace"][-1]["why"]


def test_max_rounds_bounds_the_loop() -> None:
    out = run(make_ctx(["Q1"], [0.0], alpha=-1.0, max_rounds=2))
    assert out["result"]["rounds"] == 2
    assert sum(1 for e in out["trace"] if e["node"] == "select") == 2


def test_intra_gate_rejects_and_reselects_a_different_candidate() -> None:
    ctx = make_ctx(["Q2", "Q3", "Q1"], [99.0], alpha=1.01, max_reselections=1)
    out = run(ctx)
    # alpha above any cosine: Q2 rejected, Q3 kept because the reselection budget is spent
    assert out["rejected"] == ["Q2"]
    assert out["result"]["entity"]["id"] == "Q3"
    assert ctx.scorer.calls[1]["excluded"] == {"Q2"}


def test_rejected_candidates_are_never_selected_again() -> None:
    ctx = make_ctx(["Q2", "Q3", "Q1"], [0.0, 99.0], alpha=1.01, max_reselections=2)
    out = run(ctx)
    chosen = [e["decision"] for e in out["trace"] if e["node"] == "select"]
    assert all("Q2" not in d for d in chosen[1:])
    assert out["result"]["entity"]["id"] not in out["rejected"]


def test_no_image_and_no_cues_is_unverifiable_and_accepted_by_rule() -> None:
    ctx = make_ctx(["Q1"], [99.0], alpha=-1.0)
    out = run(ctx, visual_cues={})
    assert out["result"]["accepted_by"] == "unverifiable_accept"
    inter = [e for e in out["trace"] if e["node"] == "verify_inter"][0]
    assert inter["decision"] == "unverifiable"
    assert ctx.image_text.calls == 0


def test_ablation_without_gates_answers_after_one_select() -> None:
    ctx = make_ctx(["Q3"], [0.0], use_intra=False, use_inter=False)
    out = run(ctx)
    assert out["result"]["accepted_by"] == "gate_off"
    assert [e["node"] for e in out["trace"]] == ["select", "fuse"]


def test_all_cues_at_once_gives_select_every_cue_in_round_one() -> None:
    ctx = make_ctx(["Q1"], [0.0], alpha=-1.0, all_cues_at_once=True)
    out = run(ctx)
    assert set(ctx.scorer.calls[0]["cues"]) == {"caption", "dense_captions", "tags"}
    assert out["result"]["rounds"] == 1


@pytest.mark.parametrize(("state", "expected"), [
    ({"selection": None}, "select"),
    ({"selection": {"id": "Q1"}}, "verify_inter"),
])
def test_route_after_intra(state: dict[str, Any], expected: str) -> None:
    rt = Runtime(context=make_ctx(["Q1"], [0.0]))
    assert nodes.route_after_intra(state, rt) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("round_", "queue", "accepted", "expected"), [
    (1, ["caption"], None, "fetch_visual_cue"),
    (5, ["caption"], None, "fuse"),  # max_rounds reached
    (1, [], None, "fuse"),  # no cue left
    (1, ["caption"], "inter_modal", "fuse"),
])
def test_route_after_inter(round_: int, queue: list[str], accepted: str | None, expected: str) -> None:
    rt = Runtime(context=make_ctx(["Q1"], [0.0], max_rounds=5))
    state = {"round": round_, "cue_queue": queue, "accepted_by": accepted}
    assert nodes.route_after_inter(state, rt) == expected  # type: ignore[arg-type]


def test_nodes_stream_progress_events() -> None:
    events: list[Any] = []
    ctx = make_ctx(["Q1"], [0.0])
    state = initial_state(I2CRInput(mention="Carroll Baker", candidates=CANDIDATES), ctx.config)
    nodes.select(state, Runtime(context=ctx, stream_writer=events.append))  # type: ignore[arg-type]
    assert events == [{"node": "select", "round": 1, "message": "selected Carroll Baker"}]


@pytest.mark.parametrize("bad", [
    {"mention": "  ", "candidates": CANDIDATES},
    {"mention": "x", "candidates": []},
    {"mention": "x", "image": "/no/such/file.jpg"},
    {"mention": "x", "candidates": [CANDIDATES[0], CANDIDATES[0]]},
])
def test_bad_input_is_rejected_by_the_input_model(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        I2CRInput.model_validate(bad)


@pytest.mark.parametrize("inter", [[31.0], [0.0, 0.0, 50.0], [0.0]])
def test_plain_loop_runner_matches_the_langgraph_run(inter: list[float]) -> None:
    from groundgraph.graphs.i2cr.graph import run_plain

    record = {"mention": "Carroll Baker", "context": "Carroll Baker in the swing scene", "candidates": CANDIDATES,
              "visual_cues": CUES}
    ctx = make_ctx(["Q2", "Q1"], inter, alpha=-1.0)
    via_graph = run(ctx)
    ctx = make_ctx(["Q2", "Q1"], inter, alpha=-1.0)
    plain = run_plain(initial_state(I2CRInput.model_validate(record), ctx.config), ctx)
    assert plain["result"] == via_graph["result"]
    steps = [(e["node"], e["decision"]) for e in plain["trace"]]
    assert steps == [(e["node"], e["decision"]) for e in via_graph["trace"]]
