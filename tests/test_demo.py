"""`simreal demo`: the whole loop (randomization, two PPO runs, transfer, report) at a tiny size."""

import json

import pytest

from simreal import cli
from simreal.demo import headline, run_demo, summary_lines


def tiny_demo(out, **kw):
    return run_demo(out, steps=128, episodes=2, presets=["tiny"], max_steps=15, samples=40, progress=False,
                    log=lambda line: None, **kw)


def test_demo_runs_the_loop_and_writes_the_report(tmp_path):
    result = tiny_demo(tmp_path)
    from simreal.randomize.spec import resolve_path

    assert (tmp_path / "randomization.yaml").read_text() == resolve_path("dmc_cartpole").read_text()
    assert (tmp_path / "randomization" / "histograms.png").stat().st_size > 0
    for name in ("ppo_dr", "ppo_nominal"):
        run = tmp_path / "runs" / name
        assert (run / "policy.pt").exists() and (run / "config.yaml").exists()
    cfg_dr = (tmp_path / "runs" / "ppo_dr" / "config.yaml").read_text()
    cfg_nominal = (tmp_path / "runs" / "ppo_nominal" / "config.yaml").read_text()
    assert "randomization: dmc_cartpole" in cfg_dr and "randomization: none" in cfg_nominal
    report = json.loads((tmp_path / "transfer" / "report.json").read_text())
    assert [a["name"] for a in report["agents"]] == ["ppo_dr", "ppo_nominal"]
    assert all(len(a["episodes"]["rig"]) == 2 for a in report["agents"])
    saved = json.loads((tmp_path / "demo.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert set(saved["agents"]) == {"ppo_dr", "ppo_nominal"} and isinstance(saved["randomization_narrows_gap"], bool)
    for name, row in saved["agents"].items():
        assert row["gap"] == pytest.approx(row["return_sim"] - row["return_rig"])
    assert "gap" in "\n".join(summary_lines(saved))


def test_demo_continues_from_finished_runs(tmp_path):
    tiny_demo(tmp_path)
    before = {n: (tmp_path / "runs" / n / "policy.pt").stat().st_mtime_ns for n in ("ppo_dr", "ppo_nominal")}
    lines = []
    run_demo(tmp_path, steps=128, episodes=1, presets=["tiny"], max_steps=5, samples=20, progress=False,
             log=lines.append)
    after = {n: (tmp_path / "runs" / n / "policy.pt").stat().st_mtime_ns for n in ("ppo_dr", "ppo_nominal")}
    assert before == after  # read back, not retrained
    assert sum("already trained" in line for line in lines) == 2


def test_headline_says_whether_randomization_narrowed_the_gap():
    def agent(name, sim, rig):
        return {"name": name, "randomization": None, "sim": {"return_mean": sim}, "rig": {"return_mean": rig},
                "gap": {"return_mean": sim - rig}}

    report = {"rig": {"name": "sim:x"}, "episodes": 3,
              "agents": [agent("ppo_dr", 990.0, 970.0), agent("ppo_nominal", 999.0, 950.0)]}
    h = headline(report)
    assert h["randomization_narrows_gap"] and h["rig_return_difference"] == pytest.approx(20.0)
    report["agents"][0] = agent("ppo_dr", 990.0, 900.0)
    assert not headline(report)["randomization_narrows_gap"]


def test_demo_bad_input_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["demo", "--env", "cartpole", "--steps", "0", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "argument --steps: must be >= 1, got 0" in capsys.readouterr().err.strip().splitlines()[-1]
    assert cli.main(["demo", "--env", "cartpole", "--randomization", "no_such_file", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no_such_file" in err[0]
    assert cli.main(["demo", "--env", "cartpole", "--train", "--out", str(tmp_path)]) == 2
    assert "for the hand demo" in capsys.readouterr().err
