"""Where a run goes (engine.rundir) and how every command builds its settings (base.settings.build)."""

from __future__ import annotations

from typing import get_args

import pytest

from adaptau_cli.base import settings as S
from adaptau_cli.base.errors import UserError
from adaptau_cli.base.settings import EvaluateConfig, PreprocessConfig, TrainConfig, build
from adaptau_cli.engine.rundir import RunTarget, default_run_dir, resolve_target


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------
# --out / --resume / --config
# ---------------------------------------------------------------------------

def test_no_resume_keeps_out_and_config(tmp_path):
    assert resolve_target() == RunTarget(out=None, resume=False, config=None)
    t = resolve_target(out=tmp_path / "a", config=tmp_path / "c.toml")
    assert (t.out, t.resume, t.config, t.train_defaults) == (tmp_path / "a", False, tmp_path / "c.toml", {})


def test_resume_reads_the_runs_config_and_its_legacy_defaults(tmp_path):
    run = tmp_path / "run"
    write(run / "config.toml", "[dataset]\ndataset = 'synthetic-tiny'\n[train]\nepochs = 3\n")
    t = resolve_target(resume=run)
    assert (t.out, t.resume, t.config) == (run, True, run / "config.toml")
    assert t.train_defaults == S.LEGACY_TRAIN_DEFAULTS          # the file predates warmup_patience
    write(run / "config.toml", "[train]\nepochs = 3\nwarmup_patience = 4\n")
    assert resolve_target(resume=run, out=run).train_defaults == {}
    # another --config: that file is read, and no legacy defaults apply
    other = write(tmp_path / "other.toml", "[train]\nepochs = 5\n")
    t = resolve_target(resume=run, config=other)
    assert (t.config, t.train_defaults) == (other, {})


@pytest.mark.parametrize("kw,needle", [
    (dict(resume="{tmp}/run", out="{tmp}/elsewhere"), "different run directories"),
    (dict(resume="{tmp}/nothing"), "nothing to resume"),
])
def test_resume_contradictions_are_user_errors(tmp_path, kw, needle):
    with pytest.raises(UserError, match=needle):
        resolve_target(**{k: v.format(tmp=tmp_path) for k, v in kw.items()})


def test_default_run_dir_is_named_after_the_settings_and_never_reused(tmp_path):
    data, train = PreprocessConfig(dataset="ml-1m"), TrainConfig(model="lightgcn", tau_mode="fixed")
    first = default_run_dir(data, train, root=tmp_path)
    assert first == tmp_path / "ml-1m-lightgcn-fixed"
    first.mkdir()
    assert default_run_dir(data, train, root=tmp_path) == tmp_path / "ml-1m-lightgcn-fixed-2"
    src = PreprocessConfig(source=str(tmp_path / "log.csv"))
    assert default_run_dir(src, TrainConfig(), root=tmp_path).name == "log-mf-adap-tau"
    assert RunTarget(out=None, resume=False, config=None).run_dir(data, train) == \
        default_run_dir(data, train)


# ---------------------------------------------------------------------------
# build: defaults < base < the file's [section] < flags
# ---------------------------------------------------------------------------

def test_build_layers_defaults_base_file_and_flags(tmp_path):
    cfg = write(tmp_path / "c.toml", "[train]\nepochs = 7\nlr = 0.5\n")
    t = build(TrainConfig, cfg, "train", {"lr": 0.25, "dim": None}, base={"epochs": 1, "warmup_patience": 0})
    assert (t.epochs, t.lr, t.dim, t.warmup_patience) == (7, 0.25, 64, 0)
    assert build(TrainConfig).epochs == TrainConfig().epochs


def test_build_reads_a_flat_file_and_ignores_other_sections(tmp_path):
    flat = write(tmp_path / "flat.toml", "split = 'valid'\ngroups = 3\n")
    assert (build(EvaluateConfig, flat, "evaluate").split, build(EvaluateConfig, flat, "evaluate").groups) == \
        ("valid", 3)
    run_config = write(tmp_path / "run.toml", "[dataset]\ndataset = 'synthetic'\n[train]\nepochs = 2\n")
    assert build(EvaluateConfig, run_config, "evaluate") == EvaluateConfig()
    with pytest.raises(UserError, match=r"unknown setting\(s\) splt"):
        build(PreprocessConfig, write(tmp_path / "bad.toml", "[dataset]\nsplt = 'random'\n"), "dataset")


def test_a_dataset_named_by_a_flag_replaces_the_files(tmp_path):
    cfg = write(tmp_path / "c.toml", f"[dataset]\nsource = '{tmp_path / 'log.csv'}'\nseed = 5\n")
    d = build(PreprocessConfig, cfg, "dataset", {"dataset": "synthetic-tiny"})
    assert (d.dataset, d.source, d.seed) == ("synthetic-tiny", None, 5)
    d = build(PreprocessConfig, write(tmp_path / "d.toml", "[dataset]\ndataset = 'ml-1m'\n"), "dataset",
              {"source": str(tmp_path / "x.csv")})
    assert (d.dataset, d.source) == (None, str(tmp_path / "x.csv"))


# ---------------------------------------------------------------------------
# choices: one table, the engine's messages, the engine's words
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("cls,section,flags,message", [
    (TrainConfig, "train", {"negatives": "random"},
     "unknown negatives 'random' (expected one of per-row, shared, grouped, in-batch, all)"),
    (TrainConfig, "train", {"tau_mode": "adaptive"},
     "unknown tau mode 'adaptive' (expected one of fixed, adap-tau0, adap-tau, none)"),
    (TrainConfig, "train", {"select_on": "train"}, "unknown select-on 'train' (expected one of valid, test)"),
    (EvaluateConfig, "evaluate", {"split": "train"}, "unknown split 'train' (expected 'valid' or 'test')"),
    (EvaluateConfig, "evaluate", {"grouping": "median"}, "unknown grouping 'median' (expected 'mass' or 'count')"),
    (PreprocessConfig, "dataset", {"dataset": "synthetic", "format": "xml"}, "unknown format 'xml'"),
    (PreprocessConfig, "dataset", {"dataset": "synthetic", "split": "Bogus"}, "unknown split 'bogus'"),
])
def test_a_bad_choice_from_a_flag_or_a_file_gives_the_engines_message(tmp_path, cls, section, flags, message):
    with pytest.raises(UserError) as flag_error:
        build(cls, None, section, flags)
    assert flag_error.value.message == message
    toml = "\n".join(f"{k} = '{v}'" for k, v in flags.items())
    with pytest.raises(UserError) as file_error:
        build(cls, write(tmp_path / "c.toml", f"[{section}]\n{toml}\n"), section)
    assert file_error.value.message == message


def test_choices_accept_their_words_and_custom_models():
    assert build(PreprocessConfig, None, "dataset", {"dataset": "x", "format": "CSV", "split": "loo-last"})
    assert build(TrainConfig, None, "train", {"model": "custom:MyNet"}).model == "custom:MyNet"


def test_the_choice_table_has_the_engines_words():
    from adaptau_cli.data.readers import FORMATS
    from adaptau_cli.data.split import SPLIT_METHODS
    from adaptau_cli.engine.trainer import CUSTOM_PREFIX
    from adaptau_cli.eval.groups import GROUPINGS
    from adaptau_cli.method.losses import LOSSES, NEGATIVES, NORMS
    from adaptau_cli.method.temperature import TAU_MODES
    from adaptau_cli.models import MODELS

    assert get_args(S.Format) == ("auto", *FORMATS)
    assert get_args(S.SplitMethod) == SPLIT_METHODS
    assert get_args(S.Grouping) == GROUPINGS
    assert (get_args(S.Loss), get_args(S.Negatives), get_args(S.Norm)) == (LOSSES, NEGATIVES, NORMS)
    assert get_args(S.TauMode) == TAU_MODES
    assert get_args(S.Model) == MODELS and S.CUSTOM_MODEL_PREFIX == CUSTOM_PREFIX


def test_default_run_dir_names_a_loss_other_than_the_softmax(tmp_path):
    data = PreprocessConfig(dataset="ml-1m")
    assert default_run_dir(data, TrainConfig(loss="ccl", tau_mode="none"), root=tmp_path).name == "ml-1m-mf-ccl-none"
    assert default_run_dir(data, TrainConfig(loss="directau", tau_mode="none"), root=tmp_path).name == \
        "ml-1m-mf-directau-none"
    assert default_run_dir(data, TrainConfig(logq=True, tau_mode="fixed"), root=tmp_path).name == \
        "ml-1m-mf-softmax-logq-fixed"
    assert default_run_dir(data, TrainConfig(), root=tmp_path).name == "ml-1m-mf-adap-tau"   # as before
