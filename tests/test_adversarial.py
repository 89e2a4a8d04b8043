"""Adversarial inputs (issue: reliability): each bad input gets one clear line and leaves nothing behind."""

from __future__ import annotations

import pytest

from tausynth.config import MAX_EPOCHS, load_config, load_profile
from tausynth.errors import TausynthError


def _config(tmp_path, text: str):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_an_empty_config_file_is_refused_not_taken_for_the_paper_run(tmp_path):
    with pytest.raises(TausynthError, match=r"run.yaml: the config file is empty"):
        load_config(_config(tmp_path, "# nothing here\n"))


def test_a_learning_rate_in_e_notation_is_a_number(tmp_path):
    # PyYAML (YAML 1.1) reads 1e-3, without a dot, as the string "1e-3"
    cfg = load_config(_config(tmp_path, "profile: smoke\ntraining: {lr: 1e-3, d_lr: 2E-4}\n"))
    assert cfg.training.lr == 0.001 and cfg.training.d_lr == 0.0002
    with pytest.raises(TausynthError, match=r"'training.lr': expected a number, got '1e-3x'"):
        load_config(_config(tmp_path, "profile: smoke\ntraining: {lr: 1e-3x}\n"))
    with pytest.raises(TausynthError, match=r"'training.lr': expected a finite number"):
        load_config(_config(tmp_path, "profile: smoke\ntraining: {lr: .inf}\n"))


@pytest.mark.parametrize("value", ["1e20", 10**20, MAX_EPOCHS + 1])
def test_absurd_epoch_counts_are_refused_before_any_allocation(tmp_path, value):
    with pytest.raises(TausynthError, match=r"run.yaml: config field 'training.max_epochs'"):
        load_config(_config(tmp_path, f"profile: smoke\ntraining: {{max_epochs: {value}}}\n"))


@pytest.mark.parametrize("factor", ['"0"', '"abc"', '"1/0"', "-0.5"])
def test_bad_cycle_factors_name_the_file_and_the_field(tmp_path, factor):
    with pytest.raises(TausynthError, match=r"run.yaml: config field 'training.cycle_factor'"):
        load_config(_config(tmp_path, f"profile: smoke\ntraining: {{cycle_factor: {factor}}}\n"))


def test_a_run_that_fails_before_training_leaves_no_config_behind(tmp_path):
    from tausynth.training import train

    run_dir = tmp_path / "runs" / "r"
    with pytest.raises(TausynthError, match="missing.csv"):
        train(load_profile("smoke"), run_dir, manifest=tmp_path / "missing.csv", progress=False, log=lambda _: None)
    # before: config.yaml stayed, and the corrected retry was refused as "a different config"
    assert not run_dir.exists()


def _manifest_with_id(tmp_path, subject_id: str):
    import pandas as pd

    for name in ("t1.nii.gz", "pet.nii.gz"):
        (tmp_path / name).write_bytes(b"")
    path = tmp_path / "manifest.csv"
    pd.DataFrame([{"subject_id": subject_id, "t1": "t1.nii.gz", "pet": "pet.nii.gz", "manufacturer": "Siemens",
                   "diagnosis": "CN", "split": "test"}]).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("subject_id", ["../../ESCAPED", "a/b", "..", "sub\\01"])
def test_ids_that_would_leave_their_folder_are_refused(tmp_path, subject_id):
    from tausynth.data.manifest import load_manifest, scan_stem

    # before: '../../ESCAPED' passed validation and `predict --out D` wrote outside D
    with pytest.raises(TausynthError, match=r"manifest.csv.*subject_id.*ids become file names"):
        load_manifest(_manifest_with_id(tmp_path, subject_id))
    with pytest.raises(TausynthError, match="ids become file names"):
        scan_stem(subject_id)
    assert scan_stem("002_S_0295", "m12") == "002_S_0295_ses-m12"


def test_written_files_follow_the_umask_not_the_temp_files_private_mode(tmp_path):
    import os

    from tausynth.io import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "shared.txt", "colleagues can read this\n")
    finally:
        os.umask(old)
    # before: 0600 whatever the umask
    assert (tmp_path / "shared.txt").stat().st_mode & 0o777 == 0o644


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_a_malicious_checkpoint_is_refused_naming_what_it_smuggles(tmp_path):
    import torch

    from tausynth.training.checkpoint import load_checkpoint

    path = tmp_path / "final_model.pt"
    torch.save({"format": "tausynth", "payload": _Payload()}, path)
    # before: the refusal was cut at 160 characters, before the blocked name
    with pytest.raises(TausynthError, match=r"final_model.pt: refused to load (posix|os)\.system"):
        load_checkpoint(path)


def test_a_configs_relative_manifest_is_relative_to_the_config_file(tmp_path, monkeypatch):
    folder = tmp_path / "study"
    folder.mkdir()
    path = folder / "run.yaml"
    path.write_text("profile: smoke\ndata: {source: manifest, manifest: cohort/manifest.csv}\n")
    monkeypatch.chdir(tmp_path)  # before: resolved from here, the working directory
    assert load_config(path).data.manifest == str(folder / "cohort" / "manifest.csv")


def test_book_run_outside_the_repository_root_says_so_and_writes_nothing(tmp_path):
    from tausynth.book import run_book

    with pytest.raises(TausynthError, match="not the tausynth repository root"):
        run_book("smoke", root=tmp_path, log=lambda _: None)
    assert list(tmp_path.iterdir()) == []  # before: a _build/ was left behind


def test_predict_on_a_gpu_this_machine_lacks_is_one_line(tmp_path, monkeypatch):
    import torch

    from tausynth.training.predict import load_trained_model

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(TausynthError, match="no CUDA GPU is available here; use --device cpu"):
        load_trained_model(tmp_path, device="cuda")
    with pytest.raises(TausynthError, match="not a torch device"):
        load_trained_model(tmp_path, device="gpu0")


@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory):
    from tausynth.data.synthetic import write_cohort

    out = tmp_path_factory.mktemp("adversarial-cohort")
    write_cohort(out, n=8, seed=0, resolution=4, progress=False)
    return out / "manifest.csv"


def _tiny_config():
    return load_profile("smoke", {"loss": {"perceptual": "none"}, "training": {"max_epochs": 1}})


def test_a_run_folder_in_use_is_refused_naming_the_holder(tmp_path, tiny_cohort):
    import os

    from tausynth.training import train
    from tausynth.training.run import run_lock

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "keep.txt").write_text("the running trainer's files")
    with run_lock(run_dir):
        for overwrite in (False, True):
            # before: a second `train --overwrite` deleted the folder under the running process
            with pytest.raises(TausynthError, match=rf"run is in use by process {os.getpid()}"):
                train(_tiny_config(), run_dir, manifest=tiny_cohort, overwrite=overwrite, progress=False,
                      log=lambda _: None)
    assert (run_dir / "keep.txt").is_file()


def test_resume_on_other_data_is_refused(tmp_path, tiny_cohort):
    import pandas as pd

    from tausynth.training import train

    run_dir = tmp_path / "run"
    train(_tiny_config(), run_dir, manifest=tiny_cohort, progress=False, log=lambda _: None)
    other = tiny_cohort.parent / "other.csv"
    frame = pd.read_csv(tiny_cohort, keep_default_na=False)
    frame.loc[frame["split"] == "test", "split"] = "val"  # the same images, another design
    frame.to_csv(other, index=False)
    # before: accepted, and the provenance then named only the new manifest
    with pytest.raises(TausynthError, match=r"cannot resume .*run: it was trained on .*manifest.csv and .*other.csv"):
        train(_tiny_config(), run_dir, manifest=other, resume=True, progress=False, log=lambda _: None)
    # the same content under another name is the same data
    same = tiny_cohort.parent / "same.csv"
    same.write_bytes(tiny_cohort.read_bytes())
    train(_tiny_config(), run_dir, manifest=same, resume=True, progress=False, log=lambda _: None)


# --------------------------------------------------------------------------------------------------
# Files that validate refuses are refused by train, standardize, predict and evaluate too, before any work


def _copy_cohort(src_manifest, dest):
    """A private copy of the tiny cohort (images and manifest) that a test may damage."""
    import shutil

    shutil.copytree(src_manifest.parent, dest)
    return dest / "manifest.csv"


def _scan(manifest, split: str, column: str):
    """(subject id, absolute path) of the first scan of ``split``'s ``column``."""
    import pandas as pd

    row = pd.read_csv(manifest, keep_default_na=False).query("split == @split").iloc[0]
    return row["subject_id"], manifest.parent / row[column]


def _damage(path, how: str) -> None:
    import nibabel as nib
    import numpy as np

    img = nib.load(path)
    data, affine = np.asanyarray(img.dataobj).astype(np.float32), img.affine.copy()
    if how == "missing":
        path.unlink()
        return
    if how == "corrupt":
        path.write_bytes(b"\x1f\x8b not a nifti")
        return
    if how == "lps":  # the same voxels stored left-right and front-back flipped
        data, affine = data[::-1, ::-1], affine @ np.diag([-1.0, -1.0, 1.0, 1.0])
        affine[:3, 3] += img.affine[:3, :3] @ [data.shape[0] - 1, data.shape[1] - 1, 0]
    elif how == "shifted":
        affine[0, 3] += 2.0  # 2 mm
    elif how == "4d":
        data = np.stack([data, data], axis=-1)
    elif how == "nan":
        data[tuple(s // 2 for s in data.shape)] = np.nan
    elif how == "zero":
        data[:] = 0
    nib.save(nib.Nifti1Image(data, affine), path)


DEFECTS = [
    ("pet", "lps", "affine differs from the T1 affine"),
    ("pet", "shifted", "affine differs from the T1 affine by up to 2"),
    ("t1", "missing", "file not found"),
    ("t1", "corrupt", "t1"),
    ("t1", "4d", "expected a 3D image"),
    ("pet", "nan", "contains 1 NaN"),
    ("t1", "nan", "contains 1 NaN"),
    ("pet", "zero", "the image is all zero"),
    ("t1", "zero", "the image is all zero"),
]


@pytest.mark.parametrize(("column", "how", "message"), DEFECTS, ids=[f"{c}-{h}" for c, h, _ in DEFECTS])
def test_train_refuses_a_validation_scan_that_validate_refuses(tmp_path, tiny_cohort, column, how, message):
    from tausynth.errors import ValidationErrors
    from tausynth.training import train

    manifest = _copy_cohort(tiny_cohort, tmp_path / "cohort")
    subject, path = _scan(manifest, "val", column)
    _damage(path, how)
    run_dir = tmp_path / "run"
    # before: a LPS or shifted PET trained to exit 0; a bad T1 gave a 130-line traceback
    with pytest.raises(ValidationErrors) as caught:
        train(_tiny_config(), run_dir, manifest=manifest, progress=False, log=lambda _: None)
    (line,) = caught.value.problems
    assert f"subject {subject}" in line and f"column {column}" in line and str(path) in line and message in line
    assert not run_dir.exists()  # nothing half-made to refuse the corrected retry


def test_standardize_checks_its_output_path_and_the_pet_before_fitting(tmp_path, tiny_cohort, capsys):
    from tausynth.cli import main

    manifest = _copy_cohort(tiny_cohort, tmp_path / "cohort")
    # before: `--out` onto a folder failed only after the whole fit
    assert main(["standardize", "--manifest", str(manifest), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a folder; give the path of a file to write" in err
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["standardize", "--manifest", str(manifest), "--out", str(blocker / "stats.json")]) == 2
    assert "a_file is a file, not a folder" in capsys.readouterr().err
    subject, pet = _scan(manifest, "train", "pet")
    _damage(pet, "lps")
    # before: fitted silently, with the wrong manufacturer statistics
    assert main(["standardize", "--manifest", str(manifest), "--out", str(tmp_path / "stats.json")]) == 2
    err = capsys.readouterr().err
    assert f"subject {subject}" in err and "affine differs" in err and "Traceback" not in err
    assert not (tmp_path / "stats.json").exists()


def test_an_os_error_is_one_line_and_the_provenance_says_failed(tmp_path, tiny_cohort, monkeypatch, capsys):
    import errno
    import json

    from tausynth.cli import main
    from tausynth.training import trainer

    def disk_full(path, payload):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(trainer, "save_checkpoint", disk_full)
    config = tmp_path / "tiny.yaml"
    config.write_text("profile: smoke\nloss: {perceptual: none}\ntraining: {max_epochs: 1}\n")
    run_dir = tmp_path / "run"
    code = main(["train", "--config", str(config), "--manifest", str(tiny_cohort), "--run-dir", str(run_dir), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "last_model.pt: no space left on device (free some space, or write elsewhere)" in err or \
        "no space left on device" in err
    # before: the provenance stayed "running" for ever
    assert json.loads((run_dir / "provenance.json").read_text())["status"] == "failed"
    # a run folder below a file
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code = main(["train", "--config", str(config), "--manifest", str(tiny_cohort), "--run-dir", str(blocker / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err and "a_file" in err, err


def test_scans_of_different_sizes_train_in_one_batch_on_one_grid(tmp_path, tiny_cohort):
    import json

    import nibabel as nib
    import numpy as np
    import pandas as pd

    from tausynth.data.preprocess import extract_box
    from tausynth.training import predict_run, train

    manifest = _copy_cohort(tiny_cohort, tmp_path / "cohort")
    frame = pd.read_csv(manifest, keep_default_na=False)
    small = frame[frame["split"] == "train"].iloc[0]
    for column in ("t1", "pet", "mask", "labels", "refmask", "pet_gt"):
        if small.get(column):
            path = manifest.parent / small[column]
            img = nib.load(path)
            cut, affine = extract_box(np.asanyarray(img.dataobj), img.affine, (2, 3, 1), np.array(img.shape) - (4, 6, 3))
            nib.save(nib.Nifti1Image(cut, affine, img.header), path)
    cfg = load_profile("smoke", {"loss": {"perceptual": "none"},
                                 "training": {"max_epochs": 1, "batch_size": 2, "batches_per_epoch": 2}})
    run_dir = tmp_path / "run"
    # before: torch.stack failed on the two shapes
    train(cfg, run_dir, manifest=manifest, progress=False, log=lambda _: None)
    grid = json.loads((run_dir / "provenance.json").read_text())["data"]["grid"]
    full = nib.load(manifest.parent / frame[frame["split"] == "train"].iloc[1]["t1"]).shape
    assert grid == [-(-n // 4) * 4 for n in full]  # the largest training scan, up to the U-Net's divisor
    frame.loc[frame["subject_id"] == small["subject_id"], "split"] = "test"  # predict it too
    moved = manifest.parent / "moved.csv"
    frame.to_csv(moved, index=False)
    table = predict_run(run_dir, moved, "test", log=None)
    out = table[table["subject_id"] == small["subject_id"]].iloc[0]
    assert nib.load(out["path"]).shape == nib.load(manifest.parent / small["t1"]).shape  # its own grid back


def test_a_t1_with_nan_is_called_nan_not_constant():
    import numpy as np

    from tausynth.data.preprocess import normalize_t1

    t1 = np.random.default_rng(0).random((8, 8, 8)).astype(np.float32)
    t1[4, 4, 4] = np.nan
    # before: "its intensity is constant inside the brain mask"
    with pytest.raises(TausynthError, match=r"^cannot normalize the T1: 1 voxel\(s\) inside the brain mask are NaN or Inf$"):
        normalize_t1(t1, np.ones_like(t1))


def test_predict_and_evaluate_refuse_a_test_scan_that_validate_refuses(tmp_path, tiny_cohort, capsys):
    from tausynth.cli import main
    from tausynth.training import train

    manifest = _copy_cohort(tiny_cohort, tmp_path / "cohort")
    run_dir = tmp_path / "run"
    train(_tiny_config(), run_dir, manifest=manifest, progress=False, log=lambda _: None)
    subject, t1 = _scan(manifest, "test", "t1")
    good = t1.read_bytes()
    _damage(t1, "4d")
    assert main(["predict", "--run", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert f"subject {subject}, column t1, file {t1}: expected a 3D image" in err and "Traceback" not in err
    t1.write_bytes(good)
    subject, labels = _scan(manifest, "test", "labels")
    _damage(labels, "shifted")
    assert main(["evaluate", "--run", str(run_dir), "--no-figures"]) == 2
    err = capsys.readouterr().err
    assert f"subject {subject}, column labels" in err and "affine differs" in err and "Traceback" not in err
    assert not (run_dir / "predictions" / "test").exists()  # nothing was predicted from the bad scans
