from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import label as connected

from brgan_core.synth import VIEWS, SynthStudy, generate_patient, get_preset
from brgan_core.synth.findings import DRAWERS, draw, mask_box, paste
from brgan_core.synth.presets import MALIGNANT_KINDS

CPU = get_preset("bench-cpu")


def test_four_views_with_stored_size_and_bit_depth(cpu_studies: list[SynthStudy]) -> None:
    for study in cpu_studies:
        assert [(i.laterality, i.view) for i in study.images] == list(VIEWS)
        for image in study.images:
            assert image.pixels.shape == CPU.image_size
            assert image.pixels.dtype == np.uint16
            assert int(image.pixels.max()) <= 2**CPU.bits_stored - 1
            assert image.mask.shape == CPU.image_size


def test_same_seed_gives_identical_bytes_and_other_seeds_differ() -> None:
    a = generate_patient(CPU, 11, 4)
    b = generate_patient(CPU, 11, 4)
    c = generate_patient(CPU, 12, 4)
    for x, y, z in zip(a.images, b.images, c.images, strict=True):
        assert x.pixels.tobytes() == y.pixels.tobytes()
        assert x.sop_instance_uid == y.sop_instance_uid
        assert x.pixels.tobytes() != z.pixels.tobytes()
    assert a.study_uid == b.study_uid != c.study_uid
    assert a.patient_id != c.patient_id


def test_one_view_alone_equals_that_view_of_the_full_study() -> None:
    full = generate_patient(CPU, 2, 9)
    alone = generate_patient(CPU, 2, 9, views=(("R", "MLO"),))
    assert len(alone.images) == 1
    assert np.array_equal(alone.images[0].pixels, full.image("R", "MLO").pixels)


def test_labels_boxes_and_masks_agree(cpu_studies: list[SynthStudy]) -> None:
    for study in cpu_studies:
        for image in study.images:
            assert image.label == int(bool(image.boxes)) == int(image.mask.any())
            for x0, y0, x1, y1 in image.boxes:
                assert 0 <= x0 < x1 <= image.pixels.shape[1]
                assert 0 <= y0 < y1 <= image.pixels.shape[0]
                assert image.mask[int(y0) : int(y1), int(x0) : int(x1)].any()
            if image.boxes:
                # the union of boxes covers the whole mask, and the boxes are tight
                x0, y0, x1, y1 = mask_box(image.mask)
                assert min(b[0] for b in image.boxes) == x0
                assert max(b[3] for b in image.boxes) == y1
                # lesions sit inside the breast, which is brighter than the background
                assert np.median(image.pixels[image.mask]) > 0.15 * (2**CPU.bits_stored - 1)


def test_malignant_finding_shows_in_cc_and_mlo_of_one_breast(
    cpu_studies: list[SynthStudy],
) -> None:
    malignant = [s for s in cpu_studies if s.malignant_side]
    assert 4 <= len(malignant) <= 20
    for study in cpu_studies:
        for image in study.images:
            expected = int(image.laterality == study.malignant_side)
            assert image.label == expected, (study.patient_id, image.name)
            if expected:
                assert image.birads in ("4a", "4b", "4c", "5")
                assert set(image.findings) & set(MALIGNANT_KINDS)
            else:
                assert image.birads in ("1", "2")


def test_malignant_lesion_at_similar_nipple_distance_in_both_views(
    cpu_studies: list[SynthStudy],
) -> None:
    """Geometric plausibility: CC and MLO show the lesion at a similar depth (columns)."""
    cols = CPU.image_size[1]
    for study in cpu_studies:
        if not study.malignant_side:
            continue
        depths = []
        for view in ("CC", "MLO"):
            image = study.image(study.malignant_side, view)
            x0, _, x1, _ = image.boxes[0]
            centre = (x0 + x1) / 2
            depths.append(cols - centre if image.laterality == "R" else centre)
        assert abs(depths[0] - depths[1]) < 0.35 * cols


def test_benign_look_alikes_and_birads_2(cpu_studies: list[SynthStudy]) -> None:
    images = [i for s in cpu_studies for i in s.images]
    benign = [i for i in images if i.birads == "2"]
    assert benign, "expected benign look-alikes in 24 patients"
    for image in benign:
        assert image.label == 0 and not image.boxes
        assert {"round_mass", "benign_calcifications"} & set(image.findings)


def test_left_right_similar_when_mirrored_but_not_identical(
    cpu_studies: list[SynthStudy],
) -> None:
    correlations = []
    for study in cpu_studies:
        for view in ("CC", "MLO"):
            left = study.image("L", view).pixels.astype(float)
            right = study.image("R", view).pixels[:, ::-1].astype(float)
            both = (left > 2000) & (right > 2000)
            correlations.append(np.corrcoef(left[both], right[both])[0, 1])
            unmirrored = study.image("R", view).pixels.astype(float)
            assert np.corrcoef(left.ravel(), unmirrored.ravel())[0, 1] < 0.7
    assert np.mean(correlations) > 0.6
    assert max(correlations) < 0.98


def test_plain_subtraction_does_not_single_out_lesions(cpu_studies: list[SynthStudy]) -> None:
    """The strongest spot of the smoothed L − mirrored R difference is rarely the lesion."""
    from scipy.ndimage import gaussian_filter

    hits = total = 0
    for study in cpu_studies:
        if not study.malignant_side:
            continue
        for view in ("CC", "MLO"):
            left = study.image("L", view).pixels.astype(float)
            right = study.image("R", view).pixels[:, ::-1].astype(float)
            diff = gaussian_filter(left - right, 3)
            if study.malignant_side == "R":
                diff = -diff
            diff[(left < 2000) | (right < 2000)] = -np.inf
            row, col = np.unravel_index(np.argmax(diff), diff.shape)
            image = study.image(study.malignant_side, view)
            lesion = image.mask[:, ::-1] if study.malignant_side == "R" else image.mask
            hits += bool(lesion[max(0, row - 3) : row + 4, max(0, col - 3) : col + 4].any())
            total += 1
    assert total and hits / total < 0.5


def test_density_and_patient_attributes(cpu_studies: list[SynthStudy]) -> None:
    densities = {s.density for s in cpu_studies}
    assert densities <= {"a", "b", "c", "d"} and len(densities) >= 2
    for study in cpu_studies:
        assert 40 <= study.age <= 75
        assert study.patient_name.startswith("SYNTH^")
        assert study.birth_date < study.study_datetime.date()


@pytest.mark.parametrize("kind", sorted(DRAWERS))
def test_every_finding_kind_draws_a_patch_with_a_mask(kind: str) -> None:
    finding = draw(kind, CPU, np.random.default_rng(0))
    assert finding.patch.shape == finding.mask.shape
    assert finding.patch.shape[0] == finding.patch.shape[1] and finding.patch.shape[0] % 2 == 1
    assert finding.mask.any() and float(finding.patch.max()) > 0.5
    assert finding.malignant == (kind in MALIGNANT_KINDS)
    x0, y0, x1, y1 = finding.box
    assert finding.mask[y0:y1, x0:x1].sum() == finding.mask.sum()
    if kind in ("spiculated_mass", "irregular_mass", "round_mass"):
        assert connected(finding.mask)[1] == 1


def test_paste_clips_to_region_and_image() -> None:
    finding = draw("round_mass", CPU, np.random.default_rng(1))
    image = np.zeros((40, 40), np.float32)
    region = np.zeros_like(image)
    region[:, :20] = 1
    mask = np.zeros(image.shape, bool)
    box = paste(image, finding, (20, 20), 2.0, region, mask)
    assert box is not None and box[2] <= 20
    assert not image[:, 20:].any() and not mask[:, 20:].any()
    assert paste(image, finding, (500, 500), 1.0) is None


def test_anatomy_window_ignores_finding_pixels() -> None:
    from brgan_core.synth.generator import anatomy_window

    rng = np.random.default_rng(0)
    pixels = rng.integers(1000, 3000, size=(64, 64)).astype(np.uint16)
    lesion = np.zeros(pixels.shape, dtype=bool)
    lesion[10:20, 10:20] = True  # 2.4 % of the breast: enough to move a 99.5th percentile
    with_lesion = pixels.copy()
    with_lesion[lesion] = 4000
    full = 4095.0
    assert anatomy_window(with_lesion, lesion, full) == anatomy_window(pixels, lesion, full)
    high_all = float(np.percentile(with_lesion[with_lesion > 0.12 * full], 99.5))
    assert high_all == 4000 > anatomy_window(with_lesion, lesion, full)[1]


def test_writer_stores_the_anatomy_window(cpu_studies: list[SynthStudy]) -> None:
    """WindowCenter/Width (PS3.3 C.11.2.1.2) are the generator's anatomy window."""
    from brgan_core.synth.dicom_writer import build_dataset

    malignant = [(s, i) for s in cpu_studies for i in s.images if i.label]
    study, image = malignant[0]
    assert image.voi_window is not None
    low, high = image.voi_window
    ds = build_dataset(study, image)
    assert float(ds.WindowCenter) == pytest.approx((low + high) / 2, abs=0.05)
    assert float(ds.WindowWidth) == pytest.approx(high - low, abs=0.05)
    full = 2**CPU.bits_stored - 1
    breast = image.pixels[image.pixels > 0.12 * full]
    assert high <= float(np.percentile(breast, 99.5))  # the lesion does not raise the top
