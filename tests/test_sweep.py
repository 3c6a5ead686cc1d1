"""The PD sweep: Optuna studies over the knobs of one checkpoint, resumable, shared by workers, exported."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState

from spasemsr.cli import main
from spasemsr.config import ConfigError
from spasemsr.data.images import write_image
from spasemsr.evaluation.datasets import bundled_set
from spasemsr.evaluation.identity import backbone_sha256, weights_sha256
from spasemsr.sweep.front import hypervolume_2d, preset_knobs, presets
from spasemsr.sweep.objective import SweepObjective
from spasemsr.sweep.runner import compare_models, export_front, run_worker
from spasemsr.sweep.spec import load_sweep_spec

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "weights" / "tiny" / "controlnet_sr"
ENV = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def sweep_file(folder: Path, steps: tuple[int, int] = (1, 3), **changes) -> Path:
    """experiments/pd_sweep.yaml shrunk to seconds: the shipped ControlNet-SR, one 128-pixel kodak5 cut."""
    spec = OmegaConf.load(REPO / "experiments" / "pd_sweep.yaml")
    spec.model = str(MODEL)
    spec.eval.images, spec.eval.crop, spec.eval.metrics = 1, 128, ["psnr_y", "lr_consistency", "niqe"]
    spec.space = {"control_scale": {"low": 0.25, "high": 1.5}, "start_t": {"low": 0.3, "high": 1.0},
                  "steps": {"low": steps[0], "high": steps[1]}}
    spec.sampler.population_size = 4
    spec.liveness = {"heartbeat_interval": 1, "grace_period": 3, "max_retry": 2}
    for key, value in changes.items():
        OmegaConf.update(spec, key, value, merge=False)  # a dict given replaces the file's (e.g. compare)
    path = folder / "sweep.yaml"
    path.write_text(OmegaConf.to_yaml(spec))
    return path


def trials(storage: str, study: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=study, storage=storage).get_trials()


def test_the_sweep_file_is_validated(tmp_path):
    spec = load_sweep_spec(REPO / "experiments" / "pd_sweep.yaml")
    assert spec.fidelity == "psnr_y" and spec.sampler.name == "nsga2" and set(spec.compare) == {
        "spasemsr", "baseline", "wo_spatial"}
    assert {"w_spa", "w_deg", "w_sem", "control_scale", "cfg_scale", "steps", "start_t"} <= set(spec.space)
    for change, message in (({"space.w_spatial": {"low": 0, "high": 1}}, "w_spatial is not a sampler knob"),
                            ({"space.w_spa": {"low": 0, "high": 1, "choices": [0]}}, "either low and high"),
                            ({"sampler.name": "cmaes"}, "valid: \\['nsga2', 'tpe', 'random'\\]"),
                            ({"eval.lr_recipe": "x"}, "valid keys here: \\[.*'crop'")):
        with pytest.raises(ConfigError, match=message):
            load_sweep_spec(sweep_file(tmp_path, **change))


def test_a_worker_prepares_each_image_once_and_stores_every_metric(tmp_path):
    spec = load_sweep_spec(sweep_file(tmp_path))
    objective = SweepObjective(spec, tensorboard=tmp_path / "tb")
    calls = []
    conditioner = objective.pipeline.conditioner
    objective.pipeline.conditioner = lambda *args: calls.append(1) or conditioner(*args)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(0))
    study.optimize(objective, n_trials=3)
    assert calls == [] and objective.objectives == ("psnr_y", "niqe")  # conditions were computed in __init__
    for trial in study.trials:
        metrics = trial.user_attrs["metrics"]
        assert set(metrics) == {"psnr_y", "lr_consistency", "niqe"} and trial.values == [metrics["psnr_y"],
                                                                                          metrics["niqe"]]
    assert len({tuple(t.values) for t in study.trials}) == 3  # the knobs move the objectives
    assert sorted(p.name for p in (tmp_path / "tb").iterdir()) == ["trial_00000", "trial_00001", "trial_00002"]
    # fixed per-image seeds: the same knobs give the same numbers
    again = optuna.create_study(directions=["maximize", "minimize"])
    again.enqueue_trial(study.trials[0].params)
    again.optimize(objective, n_trials=1)
    assert again.trials[0].values == study.trials[0].values


def test_sqlite_study_resumes_exports_a_front_and_feeds_upscale_presets(tmp_path, capsys):
    path, storage = sweep_file(tmp_path), f"sqlite:///{tmp_path / 'study.db'}"
    assert run_worker(str(path), storage, "pd", 3) == 3
    assert run_worker(str(path), storage, "pd", 3) == 3 and len(trials(storage, "pd")) == 3  # complete: no-op
    assert run_worker(str(path), storage, "pd", 5) == 5
    record = export_front(storage, "pd", tmp_path / "out", str(path))
    front = json.loads((tmp_path / "out" / "pd_front.json").read_text())
    assert front == record and record["ckpt"] == weights_sha256(MODEL) and record["complete_trials"] == 5
    assert set(record["presets"]) == {"fidelity", "balance", "perception"}
    assert (tmp_path / "out" / "pd_front.csv").read_text().startswith("trial,control_scale,start_t,steps,")
    best = max(record["front"], key=lambda row: row["metrics"]["psnr_y"])
    assert record["presets"]["fidelity"]["trial"] == best["trial"]
    # upscale --preset takes the knobs; a front swept on another checkpoint is refused
    lr = tmp_path / "lr.png"
    write_image(next(iter(bundled_set().head(1, 64))).lr, lr)
    assert main(["upscale", str(lr), "--out", str(tmp_path / "sr"), "--ckpt", str(MODEL), "--preset", "fidelity",
                 "--presets", str(tmp_path / "out" / "pd_front.json")]) == 0
    assert f"preset fidelity: {record['presets']['fidelity']['knobs']}" in capsys.readouterr().out
    with pytest.raises(ValueError, match="swept on checkpoint"):
        preset_knobs(tmp_path / "out" / "pd_front.json", "balance", REPO / "weights" / "tiny" / "spasemsr")
    assert record["backbone"] == backbone_sha256(MODEL)
    moved = tmp_path / "moved_front.json"
    moved.write_text(json.dumps({**record, "backbone": "0" * 64}))  # swept before the prior's VAE or UNet changed
    with pytest.raises(ValueError, match="with frozen prior 0000000000000000"):
        preset_knobs(moved, "balance", MODEL)


def test_compare_gives_each_models_hypervolume_under_every_seed_with_its_spread(tmp_path):
    spasemsr = REPO / "weights" / "tiny" / "spasemsr"
    path = sweep_file(tmp_path, steps=(1, 2), compare={"baseline": str(MODEL), "spasemsr": str(spasemsr)},
                      compare_seeds=[1], hv_reference=[5.0, 30.0])
    storage = f"sqlite:///{tmp_path / 'compare.db'}"
    summary = compare_models(str(path), storage, "cmp", 2, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "sweep_summary.json").read_text()) == summary
    assert summary["eval"]["seeds"] == [0, 1] and summary["models"]["spasemsr"]["ckpt"] == weights_sha256(spasemsr)
    for key in ("baseline", "spasemsr"):
        seed0, seed1 = summary["hypervolume_seeds"][key]
        assert seed0 == summary["hypervolume"][key] > 0 and seed1 > 0
        assert seed1 != seed0  # the same knobs sampled under another seed score otherwise
        assert summary["hypervolume_mean"][key] == pytest.approx((seed0 + seed1) / 2)
        assert summary["hypervolume_std"][key] == pytest.approx(abs(seed0 - seed1) / 2 ** 0.5)


def test_journal_storage_and_a_changed_objective_is_refused(tmp_path):
    path = sweep_file(tmp_path)
    storage = f"journal:{tmp_path / 'journal.log'}"
    assert run_worker(str(path), storage, "j", 2) == 2
    (tmp_path / "other").mkdir()
    other = sweep_file(tmp_path / "other", fidelity="lr_consistency")
    with pytest.raises(ConfigError, match="objectives: study \\['psnr_y', 'niqe'\\], this sweep \\['lr_consistency'"):
        run_worker(str(other), storage, "j", 3)


def test_fronts_presets_and_hypervolume_on_known_points():
    rows = [{"trial": 0, "knobs": {"k": 0}, "values": [30.0, 8.0], "metrics": {}},
            {"trial": 1, "knobs": {"k": 1}, "values": [28.0, 5.0], "metrics": {}},
            {"trial": 2, "knobs": {"k": 2}, "values": [20.0, 4.0], "metrics": {}}]
    picked = presets(rows, ["psnr_y", "niqe"])
    assert [picked[name]["trial"] for name in ("fidelity", "balance", "perception")] == [0, 1, 2]
    # reference (10 dB, 20): strips (30-10)*(20-8) + (28-10)*(8-5) + (20-10)*(5-4) = 240 + 54 + 10
    assert hypervolume_2d(rows, ["psnr_y", "niqe"], (10.0, 20.0)) == pytest.approx(304.0)
    assert hypervolume_2d(rows[:1], ["psnr_y", "niqe"], (31.0, 20.0)) == 0.0


def _wait_for(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.5)


@pytest.mark.slow
def test_a_killed_sweep_resumes_and_reruns_the_interrupted_trial(tmp_path):
    path, storage = sweep_file(tmp_path, steps=(60, 80)), f"sqlite:///{tmp_path / 'kill.db'}"
    command = [sys.executable, "-m", "spasemsr.cli", "sweep", "--experiment", str(path), "--storage", storage,
               "--study", "k", "--n-trials", "3"]
    worker = subprocess.Popen(command, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def one_done_one_running() -> bool:  # and the running one already has its knobs: it is sampling
        try:
            found = trials(storage, "k")
        except KeyError:  # the study does not exist yet
            return False
        states = [t.state for t in found]
        return TrialState.COMPLETE in states and states[-1] == TrialState.RUNNING and len(found[-1].params) == 3

    try:
        _wait_for(one_done_one_running, 240)
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
    interrupted = trials(storage, "k")[-1]
    assert interrupted.state == TrialState.RUNNING and interrupted.user_attrs["worker"]["pid"] == worker.pid
    done = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"trials [{interrupted.number}] of dead workers failed and queued again" in done.stdout
    final = trials(storage, "k")
    assert final[interrupted.number].state == TrialState.FAIL
    retried = [t for t in final if t.system_attrs.get("failed_trial") == interrupted.number]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE and retried[0].params == interrupted.params
    assert sum(t.state == TrialState.COMPLETE for t in final) == 3 and all(
        t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in final)
    complete = [tuple(sorted(t.params.items())) for t in final if t.state == TrialState.COMPLETE]
    assert len(set(complete)) == 3  # the resumed worker proposed new settings, not the first run's again


def _settings(storage: str, study: str) -> list[tuple]:
    return [tuple(sorted(t.params.items())) for t in trials(storage, study) if t.state == TrialState.COMPLETE]


@pytest.mark.slow
def test_a_rerun_or_topped_up_sweep_never_repeats_a_setting(tmp_path):
    path, storage = sweep_file(tmp_path), f"sqlite:///{tmp_path / 'topup.db'}"
    for total in (2, 4):  # two real `spasemsr sweep` processes: the second tops the study up
        done = subprocess.run([sys.executable, "-m", "spasemsr.cli", "sweep", "--experiment", str(path), "--storage",
                               storage, "--study", "t", "--n-trials", str(total)], cwd=REPO, env=ENV,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    settings = _settings(storage, "t")
    assert len(settings) == 4 and len(set(settings)) == 4
    assert run_worker(str(path), storage, "t", 6) == 6 and len(set(_settings(storage, "t"))) == 6  # in-process too


def test_reopening_a_study_with_another_space_or_set_is_refused(tmp_path):
    path, storage = sweep_file(tmp_path), f"sqlite:///{tmp_path / 'space.db'}"
    assert run_worker(str(path), storage, "s", 1) == 1
    for change, differs in (({"space.start_t.high": 0.9}, "space: study"), ({"eval.crop": 160}, "eval: study"),
                            ({"seed": 3}, "seed: study 0, this sweep 3")):
        folder = tmp_path / differs.split(":")[0]
        folder.mkdir(exist_ok=True)
        with pytest.raises(ConfigError, match=f"{differs}.*start another with --study NEW"):
            run_worker(str(sweep_file(folder, **change)), storage, "s", 2)
    assert run_worker(str(path), storage, "s", 2) == 2  # the same sweep still tops it up


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL server on 127.0.0.1 (Debian's `postgresql` package; .ci/run installs it)."""
    binaries = _postgres_bin()
    if binaries is None:
        reason = "PostgreSQL server binaries are not installed: apt-get install postgresql (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI installs them, so there their absence is a broken setup, not a skip
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="spasemsr-pg-"))  # not under pytest's root-only folder: postgres runs it
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if run_as:
        shutil.chown(root, "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subprocess.run([*run_as, binaries / "initdb", "-D", root / "data", "-A", "trust", "-U", "postgres"], check=True,
                   capture_output=True)
    subprocess.run([*run_as, binaries / "pg_ctl", "-D", root / "data", "-l", root / "log", "-w", "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
    yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    subprocess.run([*run_as, binaries / "pg_ctl", "-D", root / "data", "-m", "fast", "stop"], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.postgres
def test_two_workers_share_a_postgresql_study_without_losing_or_repeating_a_trial(postgres, tmp_path):
    path = sweep_file(tmp_path)
    done = subprocess.run([sys.executable, "-m", "spasemsr.cli", "sweep", "--experiment", str(path), "--storage",
                           postgres, "--study", "pg", "--n-trials", "8", "--workers", "2"],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    final = trials(postgres, "pg")
    assert [t.number for t in final] == list(range(len(final)))  # nothing lost
    assert all(t.state == TrialState.COMPLETE for t in final) and 8 <= len(final) <= 9  # two may finish together
    assert len({t._trial_id for t in final}) == len(final)
    finished = re.findall(r"Trial (\d+) finished", done.stderr)  # both workers' Optuna logs
    assert sorted(map(int, finished)) == [t.number for t in final]  # each trial evaluated exactly once
    assert len({t.user_attrs["worker"]["pid"] for t in final}) == 2  # both workers did work


def test_a_sweep_on_images_too_small_for_its_objective_is_refused_before_the_model_loads(tmp_path, monkeypatch):
    path = sweep_file(tmp_path, **{"eval.crop": 64, "perception": ["niqe"]})  # 64x64 SR, 16x16 LR
    storage = f"sqlite:///{tmp_path / 'small.db'}"
    with monkeypatch.context() as patch:
        patch.setattr("spasemsr.weights.exports.load_pipeline", lambda *a, **k: pytest.fail("the model was loaded"))
        with pytest.raises(ConfigError, match="niqe: needs SR images of at least 96 pixels a side at x4, the "
                                              "smallest here is 64x64"):
            run_worker(str(path), storage, "small", 1)
    (tmp_path / "piqe").mkdir()
    usable = sweep_file(tmp_path / "piqe", **{"eval.crop": 64, "perception": ["niqe", "piqe"]})
    assert run_worker(str(usable), storage, "small-piqe", 1) == 1  # falls back to piqe; niqe is not scored
    trial = trials(storage, "small-piqe")[0]
    assert set(trial.user_attrs["metrics"]) == {"psnr_y", "lr_consistency", "piqe"}
