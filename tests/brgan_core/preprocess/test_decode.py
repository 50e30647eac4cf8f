"""Decoding, Modality LUT, VOI LUT and MONOCHROME1 (PS3.3 C.11.1, C.11.2, C.7.6.3.1.2)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder, get_encoder
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from brgan_core.errors import DecodeError
from brgan_core.preprocess import preprocess, read_dataset, to_display, window
from tests.brgan_core.preprocess.dicom_factory import make_ds, phantom, write

RAMP = np.array([[0, 74, 75, 90, 100, 124, 125, 4095]], dtype=np.uint16)


def test_linear_window_follows_c_11_2_1_2() -> None:
    ds = make_ds(RAMP, WindowCenter=100, WindowWidth=51)
    out = to_display(ds)
    expected = [0.0, 0.0, 0.01, 0.31, 0.51, 0.99, 1.0, 1.0]
    np.testing.assert_allclose(out[0], expected, atol=1e-6)
    assert out.dtype == np.float32


def test_linear_exact_window() -> None:
    ds = make_ds(RAMP, WindowCenter=100, WindowWidth=50, VOILUTFunction="LINEAR_EXACT")
    np.testing.assert_allclose(to_display(ds)[0], [0, 0, 0, 0.3, 0.5, 0.98, 1, 1], atol=1e-6)


def test_sigmoid_window() -> None:
    ds = make_ds(RAMP, WindowCenter=100, WindowWidth=50, VOILUTFunction="SIGMOID")
    out = to_display(ds)[0]
    assert out[4] == pytest.approx(0.5)
    assert out[6] == pytest.approx(1 / (1 + np.exp(-2.0)), abs=1e-6)
    assert np.all(np.diff(out) >= 0)


def test_first_of_several_windows_is_used() -> None:
    ds = make_ds(RAMP, WindowCenter=[100, 3000], WindowWidth=[51, 200])
    assert to_display(ds)[0, 4] == pytest.approx(0.51)


def test_voi_lut_sequence_wins_over_window() -> None:
    item = Dataset()
    item.LUTDescriptor = [4, 10, 8]
    item.add_new(0x00283006, "US", [0, 85, 170, 255])
    arr = np.array([[0, 10, 11, 12, 13, 500]], dtype=np.uint16)
    ds = make_ds(arr, VOILUTSequence=[item], WindowCenter=100, WindowWidth=51)
    np.testing.assert_allclose(to_display(ds)[0], [0, 0, 1 / 3, 2 / 3, 1, 1], atol=1e-6)


def test_rescale_slope_intercept_before_window() -> None:
    # modality value = 2 * stored - 100; window centred on modality 100 (stored 100)
    ds = make_ds(RAMP, RescaleSlope=2, RescaleIntercept=-100, WindowCenter=100, WindowWidth=51)
    out = to_display(ds)[0]
    assert out[4] == pytest.approx(0.51)  # stored 100 -> modality 100
    assert out[3] == pytest.approx(0.11)  # stored 90 -> modality 80
    assert out[2] == 0.0  # stored 75 -> modality 50 <= 74.5


def test_no_voi_stretches_min_max() -> None:
    ds = make_ds(np.array([[100, 200, 300]], dtype=np.uint16))
    np.testing.assert_allclose(to_display(ds)[0], [0, 0.5, 1])


def test_monochrome1_is_inverted() -> None:
    arr = np.array([[100, 200, 300]], dtype=np.uint16)
    mono1 = to_display(make_ds(arr, photometric="MONOCHROME1"))
    np.testing.assert_allclose(mono1[0], [1, 0.5, 0])
    both = make_ds(arr, photometric="MONOCHROME1", PresentationLUTShape="INVERSE")
    np.testing.assert_allclose(to_display(both)[0], [1, 0.5, 0])  # inverted once, not twice


@pytest.mark.parametrize("bits", [10, 12, 14, 16])
def test_bit_depths(bits: int) -> None:
    top = 2**bits - 1
    arr = np.linspace(0, top, 64).astype(np.uint16).reshape(8, 8)
    ds = make_ds(arr, bits_stored=bits, WindowCenter=(top + 1) / 2, WindowWidth=top + 1)
    out = to_display(ds)
    assert out.min() == 0.0 and out.max() == pytest.approx(1.0, abs=1e-3)
    assert np.all(np.diff(out.ravel()) >= 0)


def test_signed_pixels() -> None:
    arr = np.array([[-100, 0, 100]], dtype=np.int16)
    np.testing.assert_allclose(to_display(make_ds(arr))[0], [0, 0.5, 1])


def test_window_rejects_bad_width() -> None:
    with pytest.raises(ValueError, match="LINEAR"):
        window(np.zeros(3), 10, 0.5)
    with pytest.raises(ValueError, match="unknown"):
        window(np.zeros(3), 10, 5, "CUBIC")
    ds = make_ds(RAMP, WindowCenter=100, WindowWidth=0, VOILUTFunction="SIGMOID")
    with pytest.raises(DecodeError, match="VOI window"):
        to_display(ds)


# ----------------------------------------------------------------- compressed syntaxes


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, Path]:
    arr, _ = phantom((64, 48))
    path = write(
        make_ds(arr, WindowCenter=2048, WindowWidth=4096), tmp_path_factory.mktemp("d") / "u.dcm"
    )
    return to_display(read_dataset(path)), path


@pytest.mark.parametrize(
    "syntax", [RLELossless, JPEG2000Lossless, JPEGLSLossless], ids=["rle", "j2k", "jpeg-ls"]
)
def test_compressed_roundtrip(
    syntax: str, reference: tuple[np.ndarray, Path], tmp_path: Path
) -> None:
    if not (get_encoder(syntax).is_available and get_decoder(syntax).is_available):
        pytest.skip(f"no installed plugin encodes and decodes {syntax.name}")
    expected, path = reference
    ds = read_dataset(path)
    ds.compress(syntax)
    out = write(ds, tmp_path / "c.dcm")
    got = read_dataset(out)
    assert got.file_meta.TransferSyntaxUID == syntax
    np.testing.assert_array_equal(to_display(got), expected)


def test_jpeg_lossless_via_dcmtk(reference: tuple[np.ndarray, Path], tmp_path: Path) -> None:
    if shutil.which("dcmcjpeg") is None:
        pytest.skip("dcmtk's dcmcjpeg is not installed")
    expected, path = reference
    out = tmp_path / "jpl.dcm"
    subprocess.run(["dcmcjpeg", str(path), str(out)], check=True, capture_output=True, timeout=60)
    ds = read_dataset(out)
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.70"
    np.testing.assert_array_equal(to_display(ds), expected)


# ----------------------------------------------------------------- failures


def test_missing_pixel_data(tmp_path: Path) -> None:
    ds = make_ds(RAMP)
    del ds.PixelData
    path = write(ds, tmp_path / "nopix.dcm")
    with pytest.raises(DecodeError, match=r"nopix\.dcm: .*no Pixel Data"):
        to_display(read_dataset(path), source=path)


def test_truncated_pixel_data(tmp_path: Path) -> None:
    arr, _ = phantom((32, 32))
    ds = make_ds(arr)
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    path = write(ds, tmp_path / "short.dcm")
    with pytest.raises(DecodeError, match=r"short\.dcm: .*truncated"):
        to_display(read_dataset(path), source=path)


def test_file_cut_in_the_middle(tmp_path: Path) -> None:
    arr, _ = phantom((64, 64))
    path = write(make_ds(arr), tmp_path / "cut.dcm")
    path.write_bytes(path.read_bytes()[:-3000])
    with pytest.raises(DecodeError, match=r"cut\.dcm"):
        to_display(read_dataset(path), source=path)


def test_not_dicom(tmp_path: Path) -> None:
    path = tmp_path / "notes.dcm"
    path.write_text("not a DICOM file at all")
    with pytest.raises(DecodeError, match=r"notes\.dcm: .*not a DICOM file"):
        read_dataset(path)
    with pytest.raises(DecodeError, match="file not found"):
        read_dataset(tmp_path / "missing.dcm")


def test_multiframe_is_refused() -> None:
    ds = make_ds(np.zeros((3, 8, 8), dtype=np.uint16))
    with pytest.raises(DecodeError, match="multi-frame"):
        to_display(ds, source="tomo.dcm")


def test_color_is_refused() -> None:
    ds = make_ds(RAMP)
    ds.PhotometricInterpretation = "RGB"
    with pytest.raises(DecodeError, match="not a grayscale image"):
        to_display(ds)


def test_unsupported_transfer_syntax_names_it(tmp_path: Path) -> None:
    ds = make_ds(RAMP)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.51"  # JPEG Extended, not really
    ds.PixelData = b"\xfe\xff\x00\xe0\x00\x00\x00\x00\xfe\xff\x00\xe0\x04\x00\x00\x00abcd"
    ds["PixelData"].VR = "OB"
    with pytest.raises(DecodeError, match=r"JPEG Extended.*1\.2\.840\.10008\.1\.2\.4\.51"):
        to_display(ds, source="x.dcm")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_damaged_files_only_ever_raise_decode_error(tmp_path: Path) -> None:
    """Truncations and byte corruption anywhere: a DecodeError or an image, nothing else."""
    arr, _ = phantom((24, 20))
    item = Dataset()
    item.LUTDescriptor = [4, 0, 12]
    item.add_new(0x00283006, "US", [0, 1000, 2000, 4095])
    ds = make_ds(arr, VOILUTSequence=[item], WindowCenter=2048, WindowWidth=4096)
    ds.ImageLaterality = "L"
    ds.PatientOrientation = ["A", "F"]
    good = write(ds, tmp_path / "good.dcm").read_bytes()
    rng = np.random.default_rng(7)
    variants = [good[:n] for n in (0, 64, 132, 200, 300, 400, len(good) - 1)]
    for _ in range(40):
        data = bytearray(good)
        for pos in rng.integers(132, len(good), size=3):
            data[pos] = int(rng.integers(0, 256))
        variants.append(bytes(data))
    for i, data in enumerate(variants):
        path = tmp_path / f"damaged{i}.dcm"
        path.write_bytes(data)
        try:
            out = preprocess(path, size=(16, 16))
        except DecodeError as exc:
            assert str(path) in str(exc)
        else:
            assert out.image.dtype == np.float32 and out.image.max() <= 1.0
