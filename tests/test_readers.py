"""Readers on the real shared files and on small hand-written files of every format."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adaptau_cli.base.errors import DataError, UserError
from adaptau_cli.data.readers import (
    Columns,
    detect_file_format,
    read_source,
    resolve_layout,
)


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- real files

def test_ml1m_lightgcn_folder(shared_datasets):
    raw = read_source(shared_datasets / "ml-1m")
    assert raw.format == "lightgcn" and raw.given_split
    assert set(raw.parts) == {"train", "test"}
    assert len(raw.parts["train"]) == 796_244
    assert len(raw.parts["test"]) == 99_455
    users = np.union1d(raw.parts["train"].user, raw.parts["test"].user)
    items = np.union1d(raw.parts["train"].item, raw.parts["test"].item)
    assert users.shape[0] == 6_022 and items.shape[0] == 3_043
    # first line of train.txt is "0 148 2800 2079 ..."
    assert raw.parts["train"].user[:3].tolist() == [0, 0, 0]
    assert raw.parts["train"].item[:3].tolist() == [148, 2800, 2079]
    assert raw.parts["train"].rating is None and raw.parts["train"].timestamp is None


def test_ml100k_recbole_inter(shared_datasets):
    raw = read_source(shared_datasets / "ml-100k" / "ml-100k.inter")
    t = raw.parts["all"]
    assert raw.format == "recbole"
    assert len(t) == 100_000
    assert np.unique(t.user).shape[0] == 943 and np.unique(t.item).shape[0] == 1_682
    assert t.user.dtype == np.int64                  # numeric tokens become integer ids
    assert set(np.unique(t.rating).tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert t.timestamp.dtype == np.int64
    assert (t.user[0], t.item[0], t.rating[0], t.timestamp[0]) == (196, 242, 3.0, 881250949)


# ---------------------------------------------------------------- hand-written files

def test_lightgcn_file_tolerates_blank_lines_tabs_and_itemless_users(tmp_path):
    f = write(tmp_path / "data.txt", "0 5 6\n\n1\t7  8 \n2\n3 5\n")
    raw = read_source(f)
    t = raw.parts["all"]
    assert raw.format == "lightgcn"
    assert t.user.tolist() == [0, 0, 1, 1, 3]
    assert t.item.tolist() == [5, 6, 7, 8, 5]


def test_lightgcn_folder_with_valid(tmp_path):
    write(tmp_path / "train.txt", "0 1 2\n1 2 3\n")
    write(tmp_path / "valid.txt", "0 3\n")
    write(tmp_path / "test.txt", "0 4\n1 4\n")
    raw = read_source(tmp_path)
    assert set(raw.parts) == {"train", "valid", "test"}
    assert raw.parts["valid"].item.tolist() == [3]
    assert raw.parts["test"].user.tolist() == [0, 1]


def test_csv_header_string_ids_and_common_names(tmp_path):
    f = write(tmp_path / "log.csv", "userId,movieId,rating,timestamp\nalice,m1,4.5,100\nbob,m2,3,200\n"
                                    "alice,\"m,3\",5,300\n")
    raw = read_source(f)
    t = raw.parts["all"]
    assert raw.format == "csv"
    assert t.user.tolist() == ["alice", "bob", "alice"]
    assert t.item.tolist() == ["m1", "m2", "m,3"]           # quoted field with a comma
    assert t.rating.tolist() == [4.5, 3.0, 5.0]
    assert t.timestamp.tolist() == [100, 200, 300]


def test_csv_explicit_columns_and_dates(tmp_path):
    f = write(tmp_path / "events.csv", "when,who,what,score\n2020-01-02,u1,i1,1\n2020-01-01 12:00:00,u2,i1,2\n")
    raw = read_source(f, columns=Columns(user="who", item="what", rating="score", time="when"))
    t = raw.parts["all"]
    assert t.user.tolist() == ["u1", "u2"]
    assert t.timestamp.tolist() == [1577923200, 1577880000]


def test_csv_without_header_uses_positions(tmp_path):
    f = write(tmp_path / "plain.csv", "1,10,5,1000\n2,11,3,2000\n")
    t = read_source(f).parts["all"]
    assert t.user.tolist() == [1, 2] and t.item.tolist() == [10, 11]
    assert t.rating.tolist() == [5.0, 3.0] and t.timestamp.tolist() == [1000, 2000]


def test_zero_padded_ids_stay_strings(tmp_path):
    f = write(tmp_path / "pad.csv", "user,item\n007,1\n7,2\n")
    t = read_source(f).parts["all"]
    assert t.user.tolist() == ["007", "7"]        # "007" and "7" are different users
    assert t.item.dtype == np.int64


def test_tsv_and_semicolon_sep(tmp_path):
    f = write(tmp_path / "log.tsv", "user_id\titem_id\nx\ty\n")
    assert read_source(f).parts["all"].item.tolist() == ["y"]
    g = write(tmp_path / "semi.csv", "user;item\na;b\n")
    assert read_source(g).parts["all"].user.tolist() == ["a"]
    h = write(tmp_path / "pipe.txt", "user|item\na|b\n")
    assert read_source(h, fmt="csv", columns=Columns(sep="|")).parts["all"].item.tolist() == ["b"]


def test_recbole_string_tokens(tmp_path):
    f = write(tmp_path / "x.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                                    "u_a\tbook 1\t4\t10.0\nu_b\tbook 2\t2\t11.5\n")
    t = read_source(f).parts["all"]
    assert t.user.tolist() == ["u_a", "u_b"] and t.item.tolist() == ["book 1", "book 2"]
    assert t.timestamp.dtype == np.float64 and t.timestamp.tolist() == [10.0, 11.5]


def test_movielens_ratings_dat(tmp_path):
    f = write(tmp_path / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n")
    raw = read_source(f)
    t = raw.parts["all"]
    assert raw.format == "movielens"
    assert t.user.tolist() == [1, 1, 2] and t.item.tolist() == [1193, 661, 1193]
    assert t.rating.tolist() == [5.0, 3.0, 4.0] and t.timestamp.tolist() == [978300760, 978302109, 978298413]


def test_udata(tmp_path):
    f = write(tmp_path / "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    raw = read_source(f)
    assert raw.format == "udata"
    assert raw.parts["all"].item.tolist() == [242, 302]


def test_movielens_and_udata_folders(tmp_path):
    write(tmp_path / "ratings.dat", "1::2::3::4\n")
    write(tmp_path / "movies.dat", "1::Toy Story::Comedy\n")
    assert resolve_layout(tmp_path)[0] == "movielens"


@pytest.mark.parametrize("ids", [[1, 2, 3], ["a", "b", "c"]])
def test_parquet(tmp_path, ids):
    f = tmp_path / "x.parquet"
    pq.write_table(pa.table({"user_id": ids, "item_id": [5, 6, 5], "rating": [1.0, 2.0, 3.0],
                             "ts": [3, 2, 1]}), f)
    raw = read_source(f, columns=Columns(time="ts"))
    t = raw.parts["all"]
    assert raw.format == "parquet"
    assert t.user.tolist() == ids and t.item.tolist() == [5, 6, 5] and t.timestamp.tolist() == [3, 2, 1]


def test_detect_format_by_content(tmp_path):
    assert detect_file_format(write(tmp_path / "a.txt", "1::2::3::4\n")) == "movielens"
    assert detect_file_format(write(tmp_path / "b.txt", "1 2 3 4 5\n")) == "lightgcn"
    assert detect_file_format(write(tmp_path / "c.txt", "1\t2\t3\t4\n")) == "udata"
    assert detect_file_format(write(tmp_path / "d.txt", "u,i\n")) == "csv"
    assert detect_file_format(write(tmp_path / "e.dat", "user_id:token\titem_id:token\n")) == "recbole"


# ---------------------------------------------------------------- bad input: file and line named

@pytest.mark.parametrize("name,text,fmt,expect", [
    ("train.txt", "0 1 2\n1 2 x\n", "lightgcn", ":2: non-numeric id 'x'"),
    ("train.txt", "0 1 2\n\n1 -2\n", "lightgcn", ":3: negative id -2"),
    ("train.txt", "0 1 99999999999999999999\n", "lightgcn", ":1: id 99999999999999999999 overflows"),
    ("ratings.dat", "1::2::3::4\n1::2::3\n", "movielens", ":2: expected 4 fields"),
    ("ratings.dat", "1::2::3::4\n1::2::nan::5\n", "movielens", ":2: rating is nan"),
    ("ratings.dat", "1::2::3::4\n1::2::inf::5\n", "movielens", ":2: rating is inf"),
    ("ratings.dat", "1::2::3::4\nab::2::3::5\n", "movielens", ":2: non-numeric user id 'ab'"),
    ("ratings.dat", "1:5:2:3:4:5:6\n", "movielens", ":1: expected 4 fields"),
    ("u.data", "1\t2\t3\t4\n-1\t2\t3\t4\n", "udata", ":2: negative user id -1"),
    ("u.data", "1\t2\t3\t4\n1\t2\t3\n", "udata", ":2: expected 4 tab-separated fields"),
    ("x.csv", "user,item,rating\na,b,1\nc,d\n", "csv", ":3: expected 3 fields"),
    ("x.csv", "user,item,rating\na,b,1\n\nc,d,NaN\n", "csv", ":4: rating is missing, NaN or infinite"),
    ("x.csv", "user,item,rating\na,b,1\nc,d,\n", "csv", ":3: rating is missing"),
    ("x.csv", "user,item\na,b\n,d\n", "csv", ":3: missing user id"),
    ("x.csv", "user,item\n1,2\n-4,3\n", "csv", ":3: negative user id -4"),
    ("x.csv", "user,item,rating\na,b,good\n", "csv", ":2: unreadable rating 'good'"),
    ("x.inter", "user_id:token\titem_id:token\trating:float\nu\ti\tbad\n", "recbole", ":2: unreadable rating"),
])
def test_malformed_lines_name_file_and_line(tmp_path, name, text, fmt, expect):
    f = write(tmp_path / name, text)
    with pytest.raises(DataError) as err:
        read_source(f, fmt=fmt)
    assert str(f) in err.value.message
    assert expect in err.value.message


def test_parquet_bad_values_name_the_row(tmp_path):
    f = tmp_path / "x.parquet"
    pq.write_table(pa.table({"user": [1, 2, 3], "item": [1, 2, 3], "rating": [1.0, float("nan"), 2.0]}), f)
    with pytest.raises(DataError, match=r"row 2: rating"):
        read_source(f)
    pq.write_table(pa.table({"user": [1, None], "item": [1, 2]}), f)
    with pytest.raises(DataError, match=r"row 2: missing user id"):
        read_source(f)


@pytest.mark.parametrize("setup,exc,expect", [
    (lambda p: p / "missing.csv", UserError, "source not found"),
    (lambda p: write(p / "empty.csv", ""), DataError, "file is empty"),
    (lambda p: write(p / "what.txt", "hello world\n"), UserError, "cannot tell the file format"),
    (lambda p: write(p / "nouser.csv", "a,b\nx,y\n"), UserError, "cannot find the user column"),
    (lambda p: (p / "only_train").mkdir() or write(p / "only_train" / "train.txt", "0 1\n").parent,
     UserError, "test.* is missing"),
])
def test_unusable_sources(tmp_path, setup, exc, expect):
    with pytest.raises(exc, match=expect):
        read_source(setup(tmp_path))


def test_unknown_format_and_misplaced_column_flags(tmp_path):
    f = write(tmp_path / "a.txt", "0 1\n")
    with pytest.raises(UserError, match="unknown format 'xml'"):
        read_source(f, fmt="xml")
    with pytest.raises(UserError, match="do not apply to the lightgcn format"):
        read_source(f, columns=Columns(user="u"))
    g = write(tmp_path / "b.csv", "user,item\n1,2\n")
    with pytest.raises(UserError, match="no column 'who'"):
        read_source(g, columns=Columns(user="who"))


def test_headerless_string_ids_by_position_and_bom(tmp_path):
    f = write(tmp_path / "plain.csv", "alice,book1,5\nbob,book2,3\n")
    t = read_source(f, columns=Columns(user="0", item="1", rating="2")).parts["all"]
    assert t.user.tolist() == ["alice", "bob"] and t.rating.tolist() == [5.0, 3.0]
    g = write(tmp_path / "named.csv", "user,item\nalice,book1\n")     # positions on a file with a header
    assert read_source(g, columns=Columns(user="0", item="1")).parts["all"].user.tolist() == ["alice"]
    h = tmp_path / "bom.csv"
    h.write_bytes("\ufeffuser_id,item_id\nu1,i1\n".encode("utf-8"))
    assert read_source(h).parts["all"].user.tolist() == ["u1"]
