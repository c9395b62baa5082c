"""`simreal study`: the study file, tiny cells that train, resume and are reused, CIs on known data, the verdict."""

import json
import pathlib

import numpy as np
import pytest

from simreal import cli
from simreal.evaluation.stats import bootstrap_mean, bootstrap_ratio
from simreal.evaluation.study import (StudyError, cell_config, cell_status, load_study, parse_study, plan_cells,
                                     run_study, with_settings)
from simreal.evaluation.study_report import verdict

TINY = """\
version: 1
name: tiny
steps: 128
seeds: [0]
agents:
  - name: ppo
    agent: ppo
    presets: [tiny]
    set: ["env.kwargs={goal: vertical}", env.nthread=1, eval.every=0, run.tensorboard=false]
    randomizations: [dactyl, none]
rigs: [sim:hand_laggy]
evaluation: {episodes: 2, seed: 1000, max_steps: 6}
"""


def test_bootstrap_intervals_on_known_data():
    assert bootstrap_mean([np.full(10, 3.0), np.full(7, 3.0)]) == (3.0, 3.0, 3.0)
    rng = np.random.default_rng(0)
    groups = [rng.normal(5.0, 1.0, 100) for _ in range(4)]
    mean, lo, hi = bootstrap_mean(groups)
    assert lo < 5.0 < hi and lo < mean < hi
    assert 0.12 < hi - lo < 0.3  # about 2 x 1.96 / sqrt(400) = 0.196 for one shared mean
    # seeds that disagree widen the interval: the seed is resampled, not only the episodes
    apart = [rng.normal(m, 1.0, 100) for m in (3.0, 4.0, 6.0, 7.0)]
    _, lo2, hi2 = bootstrap_mean(apart)
    assert hi2 - lo2 > 3 * (hi - lo)
    # paired ratio: a rig that halves every episode keeps exactly half
    sim = [rng.integers(1, 20, 30).astype(float) for _ in range(2)]
    assert bootstrap_ratio([g / 2 for g in sim], sim) == pytest.approx((0.5, 0.5, 0.5))
    assert bootstrap_ratio([np.zeros(3)], [np.zeros(3)]) == (None, None, None)  # no sim success: no ratio


def _report(**means):
    rows = []
    for name, (sim, rig) in means.items():
        rows.append({"row": name, "settings": {
            "nominal": {"mean": sim, "ci95": [sim * 0.9, sim * 1.1]},
            "sim:r": {"mean": rig, "ci95": [rig * 0.9, rig * 1.1], "ratio_to_sim": rig / sim if sim else None,
                      "ratio_ci95": [0.0, 1.0]}}})
    return {"metric": "consecutive_successes", "success_threshold": 1.0, "settings": ["nominal", "sim:r"],
            "rows": rows}


def test_a_single_seed_is_said_to_cover_episodes_only():
    assert "One training seed" in verdict({**_report(a=(12.0, 10.0)), "seeds": [0]})[0]
    assert not any("One training seed" in line for line in verdict({**_report(a=(12.0, 10.0)), "seeds": [0, 1]}))


def test_the_verdict_names_no_winner_when_every_agent_fails():
    lines = verdict(_report(a=(0.2, 0.0), b=(0.0, 0.0)))
    assert len(lines) == 1 and "No agent learned the task" in lines[0] and "no winner" in lines[0]
    lines = verdict(_report(a=(12.0, 0.3), b=(8.0, 0.0)))
    assert any("every agent fails" in line and "no winner" in line for line in lines)
    assert not any("does best" in line for line in lines)


def test_the_verdict_names_the_best_agent_and_says_when_intervals_overlap():
    lines = verdict(_report(dr=(12.0, 10.0), nominal=(13.0, 2.0), broken=(0.1, 0.0)))
    assert any(line.startswith("On sim:r, dr does best") and "keeping 83.3%" in line for line in lines)
    assert any("broken" in line and "not compared" in line for line in lines)
    lines = verdict(_report(dr=(12.0, 10.0), nominal=(13.0, 9.5)))
    assert any("not separable" in line for line in lines)


@pytest.mark.parametrize("text, expected", [
    ("", "the file is empty"),
    ("agents: []\nrigs: [sim:hand_laggy]", "agents: required"),
    ("bogus: 1\nagents: [{name: a, agent: ppo}]\nrigs: [x]", "bogus: unknown key"),
    ("agents: [{name: a, agent: nope}]\nrigs: [x]", "agents[0].agent: expected one of"),
    ("agents: [{name: a, agent: ppo, sets: []}]\nrigs: [x]", "agents[0].sets: unknown key"),
    ("metric: return\nagents: [{name: a, agent: ppo}]\nrigs: [x]", "success_threshold: required"),
    ("success_threshold: .nan\nagents: [{name: a, agent: ppo}]\nrigs: [x]", "success_threshold: expected a finite"),
    ("seeds: [0, 0]\nagents: [{name: a, agent: ppo}]\nrigs: [x]", "seeds: a seed is listed twice"),
    ("steps: true\nagents: [{name: a, agent: ppo}]\nrigs: [x]", "steps: expected a whole number"),
    ("agents: [{name: a, agent: ppo, vision: true}]\nrigs: [x]", "pose_estimator: required"),
    ("agents: [{name: a, agent: ppo}, {name: a, agent: ppo}]\nrigs: [x]", "used twice"),
    ("agents: [{name: a, run_dir: /nonexistent}]\nrigs: [x]", "is not a finished run"),
    ("agents: [{name: a, agent: ppo}]\nrigs: [x]\n: [", "invalid YAML"),
    ("agents: [{name: a, agent: ppo, randomizations: [dactyl, none], init_from: {dactyl: x}}]\nrigs: [x]",
     "agents[0].init_from: expected one export for each of the agent's randomizations (dactyl, none); missing: none"),
    ("agents: [{name: a, agent: ppo, randomizations: [none], init_from: /nonexistent}]\nrigs: [x]",
     "agents[0].init_from.none: /nonexistent: no policy export there"),
    ("agents: [{name: a, agent: ppo, init_from: [1]}]\nrigs: [x]", "agents[0].init_from: expected a path or a mapping"),
    ("agents: " + "[" * 20000, "nesting depth"),
])
def test_a_bad_study_file_is_one_line_naming_the_key(tmp_path, text, expected):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(StudyError) as info:
        load_study(path)
    message = str(info.value)
    assert expected in message and "\n" not in message and message.startswith(str(path))


def test_shipped_studies_validate_and_plan_their_cells(tmp_path):
    hand = load_study("studies/hand_transfer.yaml")
    labels = [c.label for c in plan_cells(hand, tmp_path)]
    assert labels == ["ppo-dactyl", "ppo-none", "dreamer-none"]
    assert hand.metric == "consecutive_successes" and set(hand.rigs) == {"sim:hand_laggy", "sim:hand_heavy_slippery"}
    only = with_settings(hand, agents=["ppo"])
    assert [c.label for c in plan_cells(only, tmp_path)] == ["ppo-dactyl", "ppo-none"]
    with pytest.raises(StudyError, match=r"--agents: sac: not an agent of .*\(its agents: ppo, dreamer\)"):
        with_settings(hand, agents=["sac"])
    for name in ("hand_transfer_continued", "hand_transfer_finetune", "hand_transfer_adr"):  # continue an export
        staged = load_study(f"studies/{name}.yaml")
        for cell in filter(lambda c: c.trained_here, plan_cells(staged, tmp_path)):
            start = cell_config(staged, cell)["run"]["init_from"]
            assert "assets/policies/ppo_" in start and pathlib.Path(start).is_dir()
    cart = with_settings(load_study("studies/cartpole_transfer.yaml"), seeds=[0, 1])
    assert len(plan_cells(cart, tmp_path)) == 4 and cart.metric == "return"


def test_a_tiny_study_trains_then_reuses_and_resumes_its_cells(tmp_path, capsys):
    study_file = tmp_path / "tiny.yaml"
    study_file.write_text(TINY)
    out = tmp_path / "out"
    assert cli.main(["study", str(study_file), "--out", str(out), "--quiet", "--jobs", "2"]) == 0  # processes
    first = capsys.readouterr().out
    assert "training 2 cell(s), 2 at a time" in first and "| ppo-dactyl |" in first and "## Verdict" in first
    report = json.loads((out / "report.json").read_text())
    assert [r["row"] for r in report["rows"]] == ["ppo-dactyl", "ppo-none"]
    cell = report["rows"][0]["settings"]["sim:hand_laggy"]
    assert cell["episodes"] == 2 and len(cell["ci95"]) == 2 and 0.0 <= cell["drop_rate"] <= 1.0
    assert report["training"]["ppo-dactyl/seed0"]["env_steps"] == 128
    assert (out / "report.png").stat().st_size > 5000
    assert (out / "logs" / "ppo-dactyl" / "seed0" / "sim_hand_laggy" / "data" / "metadata.json").is_file()
    # a rerun trains nothing and reads the cached evaluations back: the same report
    assert cli.main(["study", str(study_file), "--out", str(out), "--quiet"]) == 0
    assert "training" not in capsys.readouterr().out.split("\n", 1)[1].split("evaluating")[0]
    assert json.loads((out / "report.json").read_text())["rows"] == report["rows"]
    # a larger budget resumes each cell from its checkpoint
    study = with_settings(load_study(study_file), steps=192)
    again = run_study(study, out, progress=False, log=lambda _: None)
    assert again["training"]["ppo-none/seed0"]["env_steps"] == 192
    # a cell trained with other settings is refused, not silently reused
    changed = parse_study({**__import__("yaml").safe_load(TINY), "agents": [
        {"name": "ppo", "agent": "ppo", "presets": ["tiny"], "set": ["ppo.lr=1e-3", "env.nthread=1"],
         "randomizations": ["none"]}]}, study_file)
    with pytest.raises(StudyError, match="trained with other settings"):
        run_study(changed, out, progress=False, log=lambda _: None)
    # ... but the physics thread count leaves the numbers alone: such a cell counts as the same
    threads = parse_study({**__import__("yaml").safe_load(TINY.replace("env.nthread=1", "env.nthread=2"))},
                          study_file)
    assert [cell_status(threads, c) for c in plan_cells(threads, out)] == ["done", "done"]


def test_a_study_on_ray_gives_the_numbers_of_the_local_run(tmp_path, capsys):
    pytest.importorskip("ray")
    study_file = tmp_path / "tiny.yaml"
    study_file.write_text(TINY)
    assert cli.main(["study", str(study_file), "--out", str(tmp_path / "ray"), "--quiet", "--ray-address", "local",
                     "--jobs", "2"]) == 0
    assert "training 2 cell(s), as Ray tasks" in capsys.readouterr().out
    local = run_study(load_study(study_file), tmp_path / "local", progress=False, log=lambda _: None)
    on_ray = json.loads((tmp_path / "ray" / "report.json").read_text())
    assert on_ray["rows"] == json.loads(json.dumps(local["rows"]))
