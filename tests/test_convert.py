import functools
import gzip
import http.server
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from encoderec.core.errors import EncoderecError
from encoderec.data import convert
from encoderec.data import dataset as data

REPO = Path(__file__).resolve().parent.parent

# (user, item, unix seconds) in file order. Expected after conversion, with k = 3:
# - B's i7 (no meta) and A's i6 (empty title) go before the k-core; A's second i2 is a repeat;
# - E has 2 interactions and D's i4 is its only one: both go in the first k-core pass, which
#   leaves D with 2, removed in the second pass;
# - users by first line: B, A, C; items by first appearance in B's sequence then A's: i3, i1, i2;
# - B's i1 and i2 share a timestamp and keep their file order.
REVIEWS = [
    ("B", "i3", 300),
    ("A", "i2", 200),
    ("A", "i1", 100),
    ("C", "i1", 100),
    ("A", "i3", 300),
    ("B", "i1", 500),
    ("B", "i2", 500),
    ("A", "i2", 400),
    ("C", "i2", 150),
    ("C", "i3", 250),
    ("D", "i1", 10),
    ("D", "i2", 20),
    ("D", "i4", 30),
    ("A", "i6", 50),
    ("B", "i7", 60),
    ("E", "i1", 1),
    ("E", "i3", 2),
]
SEQUENCES = [[0, 1, 2], [1, 2, 0], [1, 2, 0]]
TIMESTAMPS = [[300, 500, 500], [100, 200, 300], [100, 150, 250]]
ASINS = ["i3", "i1", "i2"]
TITLES = ["Desk", "AT&amp;T Phone", "Pen"]


def write_lines(path: Path, lines: list[str], gz: bool) -> Path:
    text = "".join(line + "\n" for line in lines).encode("utf-8")
    path.write_bytes(gzip.compress(text) if gz else text)
    return path


def meta_2014(folder: Path, gz: bool = True) -> Path:
    records = [
        {
            "asin": "i1",
            "title": "AT&amp;T Phone",
            "description": 'A "good" phone',
            "brand": "Bell's",
            "categories": [["Office Products", "Electronics"], ["Office Products", "Electronics", "Phones"]],
        },
        {"asin": "i2", "title": "Pen", "categories": [["Office Products"]], "price": 1.5},
        {"asin": "i4", "title": "Lamp"},
        {"asin": "i6", "title": ""},
        {"asin": "i8", "title": "Never reviewed"},
    ]
    lines = [repr(r) for r in records]  # Python literals, single quotes, as in the official file
    lines.insert(2, json.dumps({"asin": "i3", "title": "Desk", "description": None, "imUrl": True, "categories": []}))
    return write_lines(folder / ("meta_Office.json.gz" if gz else "meta_Office.json"), lines, gz)


def reviews_2014(folder: Path, gz: bool = True) -> Path:
    lines = [
        json.dumps({"reviewerID": u, "asin": i, "overall": 5.0, "reviewText": "ok", "unixReviewTime": t})
        for u, i, t in REVIEWS
    ]
    return write_lines(folder / ("reviews_Office_5.json.gz" if gz else "reviews_Office_5.json"), lines, gz)


def meta_2018(folder: Path, gz: bool = True) -> Path:
    records = [
        {
            "asin": "i1",
            "title": "AT&amp;T Phone",
            "description": ["Line one.", "Line two."],
            "feature": ["Loud", "Cheap"],
            "brand": "Bell",
            "category": ["Office Products", "Electronics"],
        },
        {"asin": "i2", "title": "Pen", "description": [], "category": []},
        {"asin": "i3", "title": "Desk"},
        {"asin": "i4", "title": "Lamp"},
        {"asin": "i6", "title": "  "},
    ]
    return write_lines(folder / ("meta_Office.json.gz" if gz else "meta_Office.json"), map(json.dumps, records), gz)


def reviews_2018(folder: Path, gz: bool = True) -> Path:
    lines = [json.dumps({"reviewerID": u, "asin": i, "overall": 4.0, "unixReviewTime": t}) for u, i, t in REVIEWS]
    return write_lines(folder / ("Office_5.json.gz" if gz else "Office_5.json"), lines, gz)


def meta_2023(folder: Path, gz: bool = True) -> Path:
    records = [
        {
            "parent_asin": "i1",
            "title": "AT&amp;T Phone",
            "description": ["Line one."],
            "features": ["Loud"],
            "store": "Bell",
            "categories": [],
            "main_category": "Office Products",
        },
        {"parent_asin": "i2", "title": "Pen", "store": None, "details": {"Brand": "Bic"}, "categories": ["A", "B"]},
        {"parent_asin": "i3", "title": "Desk"},
        {"parent_asin": "i4", "title": "Lamp"},
        {"parent_asin": "i6", "title": ""},
    ]
    return write_lines(folder / ("meta_Office.jsonl.gz" if gz else "meta_Office.jsonl"), map(json.dumps, records), gz)


def reviews_2023(folder: Path, gz: bool = True) -> Path:
    lines = [
        json.dumps({"rating": 5.0, "asin": "child", "parent_asin": i, "user_id": u, "timestamp": t * 1000 + 999})
        for u, i, t in REVIEWS
    ]
    return write_lines(folder / ("Office.jsonl.gz" if gz else "Office.jsonl"), lines, gz)


WRITERS = {"2014": (reviews_2014, meta_2014), "2018": (reviews_2018, meta_2018), "2023": (reviews_2023, meta_2023)}


def raw_files(folder: Path, release: str, gz: bool = True) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    reviews, meta = WRITERS[release]
    return reviews(folder, gz), meta(folder, gz)


def check_expected(dataset: data.Dataset) -> None:
    stats = data.stats(dataset)
    assert (stats["items"], stats["users"], stats["interactions"], stats["has_timestamps"]) == (3, 3, 9, True)
    assert dataset.sequences == SEQUENCES
    assert dataset.timestamps == TIMESTAMPS
    assert [item["asin"] for item in dataset.items] == ASINS
    assert [item["title"] for item in dataset.items] == TITLES
    assert all(
        set(item) == {"title", "description", "brand", "categories", "features", "asin"} for item in dataset.items
    )
    reloaded = data.load_dataset(dataset.name, dataset.path.parent)
    assert reloaded.sequences == SEQUENCES and reloaded.items == dataset.items


@pytest.mark.parametrize("release", ["2014", "2018", "2023"])
@pytest.mark.parametrize("gz", [True, False])
def test_convert_each_release(tmp_path, release, gz):
    reviews, meta = raw_files(tmp_path / "raw", release, gz)
    dataset = convert.convert_release(release, reviews, meta, "Office", tmp_path / "data", min_count=3)
    check_expected(dataset)
    assert dataset.path == tmp_path / "data" / "Office"
    assert '"AT&amp;T Phone"' in (dataset.path / "Office.item.json").read_text()  # entities stay raw


def test_fields_2014(tmp_path):
    dataset = convert.convert_release("2014", *raw_files(tmp_path, "2014"), "Office", tmp_path / "data", min_count=3)
    phone, pen, desk = dataset.items[1], dataset.items[2], dataset.items[0]
    assert phone == {
        "title": "AT&amp;T Phone",
        "description": 'A "good" phone',
        "brand": "Bell's",
        "categories": "Office Products, Electronics, Phones",  # the deepest of the two paths
        "features": "",
        "asin": "i1",
    }
    assert pen["categories"] == "Office Products" and desk == {
        "title": "Desk",
        "description": "",
        "brand": "",
        "categories": "",
        "features": "",
        "asin": "i3",
    }


def test_fields_2018_and_2023(tmp_path):
    d18 = convert.convert_release("2018", *raw_files(tmp_path / "18", "2018"), "A", tmp_path / "data", min_count=3)
    assert d18.items[1] == {
        "title": "AT&amp;T Phone",
        "description": "Line one. Line two.",
        "brand": "Bell",
        "categories": "Office Products, Electronics",
        "features": "Loud Cheap",
        "asin": "i1",
    }
    d23 = convert.convert_release("2023", *raw_files(tmp_path / "23", "2023"), "B", tmp_path / "data", min_count=3)
    phone, pen = d23.items[1], d23.items[2]
    assert phone["categories"] == "Office Products" and phone["brand"] == "Bell" and phone["features"] == "Loud"
    assert pen["categories"] == "A, B" and pen["brand"] == "Bic" and pen["asin"] == "i2"


def test_2023_sorts_on_milliseconds_before_storing_seconds(tmp_path):
    times = [("i1", 5900), ("i2", 5100), ("i3", 7000)]
    lines = [json.dumps({"user_id": u, "parent_asin": i, "timestamp": ms}) for u in "uvw" for i, ms in times]
    reviews = write_lines(tmp_path / "X.jsonl", lines, gz=False)
    meta = write_lines(
        tmp_path / "meta_X.jsonl", [json.dumps({"parent_asin": i, "title": i}) for i, _ in times], gz=False
    )
    dataset = convert.convert_release("2023", reviews, meta, "X", tmp_path / "data", min_count=3)
    assert [item["asin"] for item in dataset.items] == ["i2", "i1", "i3"]
    assert dataset.sequences == [[0, 1, 2]] * 3 and dataset.timestamps == [[5, 5, 7]] * 3


def test_2014_ratings_csv(tmp_path):
    reviews = write_lines(tmp_path / "ratings_Office.csv", [f"{u},{i},5.0,{t}" for u, i, t in REVIEWS], gz=False)
    dataset = convert.convert_release("2014", reviews, meta_2014(tmp_path), "Office", tmp_path / "data", min_count=3)
    check_expected(dataset)


def test_gzip_detected_by_magic_bytes(tmp_path):
    reviews, meta = raw_files(tmp_path, "2018", gz=True)
    plain_name = reviews.rename(tmp_path / "Office_5.json")
    check_expected(convert.convert_release("2018", plain_name, meta, "Office", tmp_path / "data", min_count=3))


def test_k_core_is_iterative_and_keeps_order():
    rows = [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b"), ("u3", "a"), ("u3", "c")]
    # c has one user, so it goes first; u3 is then left with one item and goes in the second pass
    assert convert.k_core(rows, 2) == [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b")]
    chain = [("u1", "a"), ("u1", "b"), ("u2", "b"), ("u2", "c"), ("u3", "c")]
    assert convert.k_core(chain, 2) == []  # removing u3 strands c, which strands u2, then b and u1
    assert convert.k_core(rows, 1) == rows


# --------------------------------------------------------------------------- bad input


def test_malformed_meta_line_names_file_and_line(tmp_path):
    reviews, meta = raw_files(tmp_path, "2014")
    lines = gzip.decompress(meta.read_bytes()).decode().splitlines()
    lines[1] = "{'asin': 'i2', 'title': "
    write_lines(meta, lines, gz=True)
    with pytest.raises(EncoderecError, match=r"meta_Office\.json\.gz: line 2: not a Python or JSON dict literal") as e:
        convert.convert_release("2014", reviews, meta, "Office", tmp_path / "data", min_count=3)
    assert "2014 meta file" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "data").exists()


def test_meta_line_is_never_executed(tmp_path):
    reviews, meta = raw_files(tmp_path, "2014")
    marker = tmp_path / "pwned"
    write_lines(meta, [f"__import__('os').system('touch {marker}')"], gz=True)
    with pytest.raises(EncoderecError, match="line 1"):
        convert.convert_release("2014", reviews, meta, "Office", tmp_path / "data", min_count=3)
    assert not marker.exists()


def test_review_missing_key_names_key_and_line(tmp_path):
    reviews, meta = raw_files(tmp_path, "2018")
    lines = gzip.decompress(reviews.read_bytes()).decode().splitlines()
    lines[3] = json.dumps({"reviewerID": "C", "unixReviewTime": 1})
    write_lines(reviews, lines, gz=True)
    with pytest.raises(EncoderecError, match=r"Office_5\.json\.gz: line 4: missing key 'asin'"):
        convert.convert_release("2018", reviews, meta, "Office", tmp_path / "data", min_count=3)


def test_other_bad_input(tmp_path):
    reviews, meta = raw_files(tmp_path, "2014", gz=False)
    out = tmp_path / "data"
    with pytest.raises(EncoderecError, match="smaller --min-count"):
        convert.convert_release("2014", reviews, meta, "Office", out, min_count=4)
    with pytest.raises(EncoderecError, match="--min-count 2 is too small"):
        convert.convert_release("2014", reviews, meta, "Office", out, min_count=2)
    with pytest.raises(EncoderecError, match="missing key 'reviewerID'; is this the 2014 reviews file"):
        convert.convert_release("2014", reviews_2023(tmp_path), meta, "Office", out, min_count=3)
    with pytest.raises(EncoderecError, match="none of the 6 reviewed items has a title"):
        other = write_lines(tmp_path / "meta_Other.json", [repr({"asin": "z", "title": "Other"})], gz=False)
        convert.convert_release("2014", reviews, other, "Office", out, min_count=3)
    with pytest.raises(EncoderecError, match="unixReviewTime is 'soon', expected an integer"):
        bad_time = write_lines(
            tmp_path / "t.json", [json.dumps({"reviewerID": "A", "asin": "i", "unixReviewTime": "soon"})], False
        )
        convert.convert_release("2014", bad_time, meta, "Office", out, min_count=3)
    with pytest.raises(EncoderecError, match="file not found"):
        convert.convert_release("2014", tmp_path / "nope.json", meta, "Office", out, min_count=3)
    with pytest.raises(EncoderecError, match="ratings CSVs are read for --release 2014 only"):
        csv_file = write_lines(tmp_path / "ratings_Office.csv", ["A,i1,5.0,1"], gz=False)
        convert.convert_release("2018", csv_file, meta, "Office", out, min_count=3)
    with pytest.raises(EncoderecError, match="unknown release '2020'"):
        convert.convert_release("2020", reviews, meta, "Office", out)
    assert not out.exists()


def test_non_utf8_and_truncated_gzip(tmp_path):
    reviews, meta = raw_files(tmp_path, "2018", gz=False)
    meta.write_bytes(meta.read_bytes().replace(b"Desk", b"D\xffsk"))
    with pytest.raises(EncoderecError, match=r"meta_Office\.json: line 3: byte 0xff is not valid UTF-8"):
        convert.convert_release("2018", reviews, meta, "Office", tmp_path / "data", min_count=3)
    truncated = tmp_path / "cut.json.gz"
    truncated.write_bytes(gzip.compress(reviews.read_bytes())[:-20])
    with pytest.raises(EncoderecError, match="cut.json.gz: cannot read it"):
        convert.convert_release("2018", truncated, meta, "Office", tmp_path / "data", min_count=3)


# --------------------------------------------------------------------------- CLI


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "encoderec", *args], cwd=REPO, capture_output=True, text=True, timeout=60
    )


def test_cli_convert(tmp_path):
    reviews, meta = raw_files(tmp_path / "raw", "2023")
    args = ["data", "convert", "--release", "2023", "--reviews", str(reviews), "--meta", str(meta), "--name", "Office"]
    done = run_cli(*args, "--min-count", "3", "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["interactions"] == 9

    write_lines(meta, ["{not json"], gz=True)
    failed = run_cli(*args, "--min-count", "3", "--data-dir", str(tmp_path / "fresh"))
    assert failed.returncode == 2
    assert failed.stderr.count("\n") == 1 and "Traceback" not in failed.stderr
    assert "meta_Office.jsonl.gz: line 1" in failed.stderr
    assert not (tmp_path / "fresh").exists()


# --------------------------------------------------------------------------- download


@pytest.fixture
def server(tmp_path):
    """Serves tmp_path/www on 127.0.0.1 laid out like the 2018 release."""
    root = tmp_path / "www"
    reviews, meta = raw_files(root, "2018")
    (root / "categoryFilesSmall").mkdir()
    (root / "metaFiles2").mkdir()
    reviews.rename(root / "categoryFilesSmall" / reviews.name)
    meta.rename(root / "metaFiles2" / meta.name)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def test_download_then_reuse_files(tmp_path, server):
    out = tmp_path / "data"
    dataset = convert.download("Office", "2018", out, base_url=server, min_count=3)
    check_expected(dataset)
    raw = out / "Office" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == ["Office_5.json.gz", "meta_Office.json.gz"]
    again = convert.download("Office", "2018", out, base_url=closed_port_url(), min_count=3)  # files present: no fetch
    assert again.sequences == SEQUENCES


def test_download_url_from_environment(tmp_path, server, monkeypatch):
    monkeypatch.setenv("ENCODEREC_DOWNLOAD_URL", server.rstrip("/"))
    assert convert.download("Office", "2018", tmp_path / "data", name="Off", min_count=3).name == "Off"


def test_download_errors(tmp_path, server):
    start = time.monotonic()
    with pytest.raises(EncoderecError, match=r"could not download .*no network\?.*--data-dir") as e:
        convert.download("Office", "2014", tmp_path / "data", base_url=closed_port_url(), timeout=5)
    assert time.monotonic() - start < 3 and "\n" not in str(e.value)
    assert "data convert --release 2014" in str(e.value)
    with pytest.raises(EncoderecError, match="HTTP 404"):
        convert.download("Toys", "2018", tmp_path / "data", base_url=server)
    with pytest.raises(EncoderecError, match="not a McAuley Lab category"):
        convert.download("../etc", "2018", tmp_path / "data", base_url=server)
    assert not (tmp_path / "data").exists()
