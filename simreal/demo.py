"""`simreal demo`: the whole sim-to-real loop on built-in defaults, in minutes on two CPU cores.

1. **Randomization.** The shipped ``randomizations/dmc_cartpole.yaml`` (masses, damping, gains,
   gravity, rail friction, timing jitter, sensor and action noise, 0-20 ms latency, pushes) is
   checked and copied to ``OUT/randomization.yaml``, with histograms of 1000 episode samples
   (``OUT/randomization/histograms.png``).
2. **Training.** Recurrent PPO on dm_control cart-pole balance, twice, with the same seed, sizes
   and budget: with that randomization (``OUT/runs/ppo_dr``) and at nominal physics
   (``OUT/runs/ppo_nominal``). Each is a normal ``simreal train ppo`` run directory.
3. **Transfer.** Both agents on nominal simulation and on a held-out simulated rig
   (``sim:cartpole_laggy`` by default: 40 ms command latency, a biased motor and twice the sensor
   noise, each beyond the training ranges), the same seeds for both; every rig episode is
   recorded under ``OUT/transfer/logs``.
4. **Report.** ``OUT/transfer/report.md|json`` and ``transfer.png`` (the agents side by side), and
   ``OUT/demo.json``: each agent's sim-to-rig return gap and whether randomization narrowed it.

A stopped demo picks up where it stopped: a finished training run is read back, a killed one
resumes from its last checkpoint (run again with the same ``--out``). The transfer stage is
derived from the runs and is evaluated again each time (same seeds, same episodes).
"""

from __future__ import annotations

import json
import pathlib
import shutil
import time
from typing import Any, Callable

DEFAULTS: dict[str, Any] = {
    "env": "dm_control/cartpole-balance-v0",
    "randomization": "dmc_cartpole",
    "rig": "sim:cartpole_laggy",
    "steps": 300_000,
    "episodes": 10,
    "seed": 0,
}
AGENTS = (("ppo_dr", True), ("ppo_nominal", False))  # (run name, trained with the randomization)


def _train(run_path: pathlib.Path, env: str, randomization: str, steps: int, seed: int,
           presets: list[str], overrides: list[str], progress: bool, log: Callable[[str], None]) -> dict:
    """Train (or resume, or read back) one PPO run; returns its last metrics."""
    from simreal.agents.ppo import CONFIG_PATH
    from simreal.agents.ppo.ppo import PPOTrainer
    from simreal.training.config import merge, resolve_config
    from simreal.training.run import RunDir

    resume = (run_path / "config.yaml").exists()
    run = RunDir(run_path, resume=resume)
    if resume:
        cfg = run.load_config()
    else:
        cfg = resolve_config(CONFIG_PATH, ["cartpole", *presets], overrides)
        cfg = merge(cfg, {"env": {"id": env, "randomization": randomization},
                          "run": {"steps": steps, "seed": seed}}, "simreal demo")
        run.save_config(cfg)
    trainer = PPOTrainer(cfg, run, progress=progress)
    try:
        if trainer.env_steps >= trainer.total_updates * trainer.steps_per_update:
            log(f"  {run_path.name}: already trained ({trainer.env_steps} steps), read back")
            return {}
        what = f"resuming at step {trainer.env_steps}" if trainer.env_steps else f"{cfg['run']['steps']} steps"
        log(f"  {run_path.name}: PPO on {env}, randomization {cfg['env']['randomization']}, {what}")
        return trainer.train()
    finally:
        trainer.close()


def headline(report: dict, agents: tuple[tuple[str, bool], ...] = AGENTS) -> dict:
    """Each agent's returns and gap, and whether the randomized agent's gap is the smaller one."""
    by_name = {a["name"]: a for a in report["agents"]}
    rows = {}
    for name, _ in agents:
        a = by_name[name]
        rows[name] = {"randomization": a.get("randomization"), "return_sim": a["sim"]["return_mean"],
                      "return_rig": a["rig"]["return_mean"], "gap": a["gap"].get("return_mean")}
    (dr, _), (nominal, _) = agents
    gap_dr, gap_nominal = rows[dr]["gap"], rows[nominal]["gap"]
    return {"rig": report["rig"]["name"], "episodes": report["episodes"], "agents": rows,
            "randomization_narrows_gap": bool(gap_dr is not None and gap_nominal is not None
                                              and abs(gap_dr) < abs(gap_nominal)),
            "rig_return_difference": rows[dr]["return_rig"] - rows[nominal]["return_rig"]}


def run_demo(out: str | pathlib.Path = "outputs/demo", env: str = DEFAULTS["env"],
             randomization: str = DEFAULTS["randomization"], rig: str = DEFAULTS["rig"],
             steps: int = DEFAULTS["steps"], episodes: int = DEFAULTS["episodes"], seed: int = DEFAULTS["seed"],
             presets: list[str] | None = None, overrides: list[str] | None = None, max_steps: int | None = None,
             samples: int = 1000, progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Run the four stages (module docstring); returns the headline also written to OUT/demo.json."""
    from simreal.evaluation.report import write_report
    from simreal.evaluation.transfer import evaluate_transfer
    from simreal.randomize import load_spec, sampling
    from simreal.randomize.spec import resolve_path

    if steps < 1:
        raise ValueError(f"--steps must be >= 1, got {steps}")
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    times: dict[str, float] = {}

    log(f"[1/4] randomization: {randomization}")
    (out / "randomization").mkdir(exist_ok=True)
    spec = load_spec(randomization)  # one-line error naming the file and key if it does not validate
    source = pathlib.Path(resolve_path(randomization))
    shutil.copyfile(source, out / "randomization.yaml")
    from simreal.cli import bind_randomization  # the binding `simreal randomization sample` uses

    stack = bind_randomization(spec, env)
    drawn = sampling.draw_samples(stack, samples, seed, progress=False)
    sampling.write_csv(drawn, out / "randomization" / "samples.csv", n=samples)
    png = sampling.plot_histograms(drawn, stack, out / "randomization" / "histograms.png", n=samples)
    log(f"  {len(stack.items)} randomizers from {source}; {samples} samples drawn: {png}")
    times["randomization"] = time.perf_counter() - t0

    log(f"[2/4] training: PPO with and without randomization, {steps} env steps each")
    runs = []
    for name, randomized in AGENTS:
        t = time.perf_counter()
        _train(out / "runs" / name, env, randomization if randomized else "none", steps, seed,
               list(presets or []), list(overrides or []), progress, log)
        times[f"train_{name}"] = time.perf_counter() - t
        runs.append(out / "runs" / name)

    log(f"[3/4] transfer: {episodes} episodes per agent on nominal simulation and on {rig}")
    t = time.perf_counter()
    if (out / "transfer").exists():  # derived from the runs: evaluated again, the same seeds give the same episodes
        log(f"  replacing the previous {out / 'transfer'}")
        shutil.rmtree(out / "transfer")
    report = evaluate_transfer(runs, rig, episodes, out / "transfer", seed=1000 + seed, max_steps=max_steps,
                               progress=progress, log=lambda line: log(f"  {line}"))
    times["transfer"] = time.perf_counter() - t

    log("[4/4] report")
    paths = write_report(out / "transfer", report)
    result = headline(report)
    result.update(env=env, randomization=randomization, steps=steps, seed=seed,
                  seconds={k: round(v, 1) for k, v in times.items()},
                  total_seconds=round(time.perf_counter() - t0, 1),
                  report={k: str(v) for k, v in paths.items()})
    (out / "demo.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def summary_lines(result: dict) -> list[str]:
    """What the demo found, in a few lines for the terminal."""
    lines = [f"sim-to-rig return gap on {result['rig']} ({result['episodes']} episodes each):"]
    for name, row in result["agents"].items():
        lines.append(f"  {name:<12} trained with {row['randomization'] or 'nominal physics':<16} "
                     f"sim {row['return_sim']:7.1f}  rig {row['return_rig']:7.1f}  gap {row['gap']:6.1f}")
    verdict = "narrowed" if result["randomization_narrows_gap"] else "did NOT narrow"
    lines.append(f"domain randomization {verdict} the gap; total {result['total_seconds'] / 60:.1f} min")
    return lines
