"""`simreal demo`: the sim-to-real loop on built-in defaults, in minutes on two CPU cores.

The hand (default, `run_hand_demo`):

1. **Randomization.** ``randomizations/dactyl.yaml`` (Dactyl's physics, unmodeled effects, noise
   and visuals) is checked, copied to ``OUT/randomization.yaml`` and sampled 1000 times
   (``OUT/randomization/histograms.png``).
2. **Agents.** The agents shipped under ``assets/policies/`` (each folder a finished run with its
   ``trained.json``: commit, config, steps, minutes; see `simreal.evaluation.shipped`): PPO trained
   with that randomization and without it, each acting on the measured cube pose and, for the
   randomized one, on the pose the shipped CNN estimates from the camera images; and any other
   shipped agent (DreamerV3). With ``train=True`` they are trained instead by the study file
   ``studies/hand_transfer.yaml`` (hours).
3. **Study.** Every agent runs the same seeded episodes on nominal simulation and on a held-out
   hand rig (``sim:hand_laggy``: 120 ms latency and backlash), rig episodes recorded; the
   generated study file is ``OUT/study.yaml`` (rerun it with `simreal study`).
4. **Report.** ``OUT/study/report.md|json|png``: consecutive successes, drop rate and the
   fraction kept on the rig with bootstrap 95% intervals, and the verdict; ``OUT/demo.json``.

Cart-pole (``--env cartpole``, `run_demo`): the same loop trained from scratch in about four
minutes, PPO with ``randomizations/dmc_cartpole.yaml`` and without it on dm_control cart-pole
balance, evaluated on nominal simulation and ``sim:cartpole_laggy``:

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
resumes from its last checkpoint (run again with the same ``--out``); evaluations of unchanged
policies are read back from the study's cache.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import time
from typing import Any, Callable

HAND_DEFAULTS: dict[str, Any] = {
    "randomization": "dactyl",
    "rig": "sim:hand_laggy",
    "episodes": 10,
    "study": pathlib.Path(__file__).resolve().parents[1] / "studies" / "hand_transfer.yaml",
}
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


def sample_randomization(out: pathlib.Path, randomization: str, env_id: str, samples: int, seed: int,
                         log: Callable[[str], None]) -> pathlib.Path:
    """Check a randomization file against env_id, copy it to OUT/randomization.yaml and plot
    ``samples`` episode draws (OUT/randomization/histograms.png); returns the histogram path."""
    from simreal.randomize import load_spec, sampling
    from simreal.registration import bind_to_env
    from simreal.randomize.spec import resolve_path

    (out / "randomization").mkdir(parents=True, exist_ok=True)
    spec = load_spec(randomization)  # one-line error naming the file and key if it does not validate
    source = pathlib.Path(resolve_path(randomization))
    shutil.copyfile(source, out / "randomization.yaml")
    stack = bind_to_env(spec, env_id)
    drawn = sampling.draw_samples(stack, samples, seed, progress=False)
    sampling.write_csv(drawn, out / "randomization" / "samples.csv", n=samples)
    png = sampling.plot_histograms(drawn, stack, out / "randomization" / "histograms.png", n=samples)
    log(f"  {len(stack.items)} randomizers from {source}; {samples} samples drawn: {png}")
    return png


def _begin(out, episodes: int, randomization: str, env_id: str, samples: int, seed: int,
           log: Callable[[str], None]) -> tuple[pathlib.Path, float, dict[str, float]]:
    """Stage 1 of both demos: check the arguments, create OUT, sample the randomization."""
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    log(f"[1/4] randomization: {randomization}")
    sample_randomization(out, randomization, env_id, samples, seed, log)
    return out, t0, {"randomization": time.perf_counter() - t0}


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

    if steps < 1:
        raise ValueError(f"--steps must be >= 1, got {steps}")
    out, t0, times = _begin(out, episodes, randomization, env, samples, seed, log)

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


# ----------------------------------------------------------------------------- the hand
def shipped_study(agents: dict[str, dict], agents_dir: pathlib.Path, rig: str, episodes: int,
                  max_steps: int | None = None) -> dict:
    """A study file (as data) that evaluates the shipped agents as they are: every policy on nominal
    simulation and ``rig``, those whose record says ``vision: true`` also on the shipped pose
    estimator's pose."""
    policies = {n: r for n, r in agents.items() if r.get("kind") == "policy"}
    estimators = [n for n, r in agents.items() if r.get("kind") == "pose_estimator"]
    if not policies:
        raise ValueError(f"{agents_dir}: no shipped policies (folders with trained.json and policy.pt); "
                         "train them with `simreal demo --train`")
    entries = []
    for name, record in policies.items():
        entry = {"name": name, "run_dir": str(agents_dir / name)}
        if record.get("vision") and estimators:
            entry["vision"] = True
        entries.append(entry)
    study = {"version": 1, "name": "hand_demo",
             "description": f"the agents shipped in {agents_dir}, evaluated as trained (simreal demo)",
             "metric": "consecutive_successes", "success_threshold": 1.0, "agents": entries, "rigs": [rig],
             "evaluation": {"episodes": int(episodes), "seed": 1000, "max_steps": max_steps}}
    if any(e.get("vision") for e in entries):
        study["pose_estimator"] = str(agents_dir / estimators[0])
    return study


def describe_shipped(name: str, r: dict) -> str:
    """One line on how a shipped agent was trained (its trained.json), with the runs it continued."""
    minutes = f", {r['minutes']} min" if r.get("minutes") is not None else ""
    what = r.get("agent") if r.get("kind") == "policy" else "pose estimator"
    earlier = r.get("continued_from") or {}
    chain = (f" (continued from {earlier.get('name') or 'an earlier run'}: {r['steps_total']} steps, "
             f"{r.get('minutes_total')} min in all)" if r.get("steps_total") else "")
    return (f"{name}: {what}, randomization {r.get('randomization') or 'none'}, "
            f"{r.get('steps')} steps{minutes}{chain}, commit {r.get('commit')}")


def run_hand_demo(out: str | pathlib.Path = "outputs/demo", agents_dir: str | pathlib.Path | None = None,
                  rig: str = HAND_DEFAULTS["rig"], episodes: int = HAND_DEFAULTS["episodes"],
                  randomization: str = HAND_DEFAULTS["randomization"], train: bool = False,
                  study_file: str | pathlib.Path = HAND_DEFAULTS["study"], jobs: int = 1,
                  max_steps: int | None = None, samples: int = 1000, progress: bool = True,
                  log: Callable[[str], None] = print) -> dict:
    """The hand demo (module docstring); returns what OUT/demo.json holds."""
    import yaml

    from simreal import HAND_CUBE_ID
    from simreal.evaluation.study import load_study, parse_study, run_study, with_settings
    from simreal.evaluation.shipped import ASSETS_DIR, shipped_agents

    out, t0, times = _begin(out, episodes, randomization, HAND_CUBE_ID, samples, 0, log)

    shipped: dict[str, dict] = {}
    if train:
        study = with_settings(load_study(study_file), episodes=episodes)
        log(f"[2/4] agents: trained by {study_file} ({len(study.agents)} agents; hours on two cores, resumable "
            "with the same --out)")
    else:
        agents_dir = pathlib.Path(agents_dir) if agents_dir is not None else ASSETS_DIR
        shipped = shipped_agents(agents_dir)
        log(f"[2/4] agents: {len(shipped)} shipped in {agents_dir}")
        for name, r in shipped.items():
            log(f"  {describe_shipped(name, r)}")
        data = shipped_study(shipped, agents_dir, rig, episodes, max_steps)
        study_path = out / "study.yaml"
        study_path.write_text("# written by `simreal demo`; rerun with `simreal study " + str(study_path) + "`\n"
                              + yaml.safe_dump(data, sort_keys=False))
        study = parse_study(data, study_path)
    times["agents"] = time.perf_counter() - t0 - times["randomization"]

    settings = ", ".join(["nominal", *study.rigs])
    log(f"[3/4] study: {study.episodes} episodes per agent on {settings}")
    t = time.perf_counter()
    report = run_study(study, out / "study", jobs=jobs, train=train, progress=progress,
                       log=lambda line: log(f"  {line}"))
    times["study"] = time.perf_counter() - t

    log("[4/4] report")
    result = {"env": HAND_CUBE_ID, "randomization": randomization, "rigs": list(study.rigs),
              "episodes": study.episodes, "trained": bool(train),
              "agents": {n: {k: r.get(k) for k in ("kind", "agent", "randomization", "steps", "minutes", "commit")}
                         for n, r in shipped.items()},
              "verdict": report["verdict"], "report": report["paths"],
              "seconds": {k: round(v, 1) for k, v in times.items()},
              "total_seconds": round(time.perf_counter() - t0, 1)}
    (out / "demo.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
