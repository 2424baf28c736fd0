"""Date-string timestamps: converted by their unit (pandas 2 ns, pandas 3 us/s), day/month order never guessed."""

from __future__ import annotations

import calendar
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptau_cli.base.errors import DataError
from adaptau_cli.data.readers import Columns, datetime_seconds, read_source
from adaptau_cli.data.store import load_dataset

EVENTS = [dt.datetime(2020, 2, 1, 10, 0, s) for s in range(1, 8)]  # seven events, one second apart


@pytest.mark.parametrize("unit", ["ns", "us", "ms", "s"])
def test_datetime_seconds_does_not_depend_on_the_resolution(unit):
    # pandas 2 parses to datetime64[ns], pandas 3 to [us] (or [s]): the seconds must not change
    parsed = pd.Series(pd.to_datetime(["2020-02-01 10:00:01", "1970-01-01 00:00:00", "2038-01-19 03:14:08"],
                                      utc=True)).dt.as_unit(unit)
    assert datetime_seconds(parsed).tolist() == [1580551201, 0, 2 ** 31]
    assert datetime_seconds(parsed).dtype == np.int64


@pytest.mark.parametrize("unit", ["ns", "us", "ms"])
def test_datetime_seconds_keeps_fractions(unit):
    parsed = pd.Series(pd.to_datetime(["2020-02-01 10:00:01.250"], utc=True)).dt.as_unit(unit)
    assert datetime_seconds(parsed).tolist() == [1580551201.25]


def shuffled_log(path: Path, fmt: str, users: int = 12) -> Path:
    """Each user's seven events written in a shuffled order; item u*10+s happened at second s."""
    rng = np.random.default_rng(3)
    rows = ["user_id,item_id,timestamp"]
    for u in range(users):
        for k in rng.permutation(len(EVENTS)):
            rows.append(f"u{u},i{u * 10 + k + 1},{EVENTS[k].strftime(fmt)}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_loo_last_takes_each_users_latest_event(tmp_path, adaptau_home):
    """The issue's reproduction: date strings one second apart, ``--split loo-last``."""
    src = shuffled_log(tmp_path / "log.csv", "%d/%m/%Y %H:%M:%S")
    code, out, err = run_cli(["preprocess", "--source", str(src), "--split", "loo-last",
                              "--time-format", "%d/%m/%Y %H:%M:%S", "--json", "--quiet"])
    assert code == 0, err
    ds = load_dataset(json.loads(out)["path"])
    test_items = {str(ds.user_ids[u]): str(ds.item_ids[i]) for u, i in zip(ds.split("test").users, ds.split("test").items)}
    valid_items = {str(ds.user_ids[u]): str(ds.item_ids[i]) for u, i in zip(ds.split("valid").users, ds.split("valid").items)}
    assert test_items == {f"u{u}": f"i{u * 10 + 7}" for u in range(12)}     # the latest, second 7
    assert valid_items == {f"u{u}": f"i{u * 10 + 6}" for u in range(12)}    # the one before it
    assert sorted(set(ds.split("test").timestamps.tolist())) == [calendar.timegm(EVENTS[-1].timetuple())]


def test_ambiguous_day_month_is_refused_with_one_line(tmp_path):
    src = shuffled_log(tmp_path / "log.csv", "%d/%m/%Y %H:%M:%S")   # 01/02/2020: day and month <= 12
    code, out, err = run_cli(["preprocess", "--source", str(src), "--split", "loo-last"])
    assert code == 2
    line = err.strip()
    assert "\n" not in line and "could be day/month or month/day" in line and "--time-format" in line
    assert "Traceback" not in err


def test_day_first_is_read_off_a_value_above_twelve(tmp_path):
    f = tmp_path / "log.csv"
    f.write_text("user,item,time\n1,1,13/02/2020 10:00\n1,2,01/03/2020 10:00\n", encoding="utf-8")
    t = read_source(f).parts["all"]
    expected = [calendar.timegm(dt.datetime(2020, 2, 13, 10).timetuple()),
                calendar.timegm(dt.datetime(2020, 3, 1, 10).timetuple())]
    assert t.timestamp.tolist() == expected


def test_month_first_is_read_off_a_value_above_twelve(tmp_path):
    f = tmp_path / "log.csv"
    f.write_text("user,item,time\n1,1,02/13/2020\n1,2,03/01/2020\n", encoding="utf-8")
    t = read_source(f).parts["all"]
    assert t.timestamp.tolist() == [calendar.timegm(dt.datetime(2020, 2, 13).timetuple()),
                                    calendar.timegm(dt.datetime(2020, 3, 1).timetuple())]


def test_contradicting_orders_are_refused(tmp_path):
    f = tmp_path / "log.csv"
    f.write_text("user,item,time\n1,1,13/02/2020\n1,2,02/13/2020\n", encoding="utf-8")
    with pytest.raises(DataError, match="puts the day second"):
        read_source(f)


def test_time_format_that_does_not_match_names_the_line(tmp_path):
    f = tmp_path / "log.csv"
    f.write_text("user,item,time\n1,1,2020-02-13\n1,2,13.02.2020\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"log.csv:3: unreadable timestamp") as err:
        read_source(f, columns=Columns(time_format="%Y-%m-%d"))
    assert "--time-format" in str(err.value.hint)


def test_iso_strings_read_by_arrow_keep_their_seconds(tmp_path):
    f = tmp_path / "log.csv"
    f.write_text("user,item,time\n1,1,2020-02-01 10:00:01\n1,2,2020-02-01T10:00:02\n", encoding="utf-8")
    assert read_source(f).parts["all"].timestamp.tolist() == [1580551201, 1580551202]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2099, 12, 31)),
                min_size=1, max_size=12),
       st.sampled_from(["%d/%m/%Y %H:%M:%S", "%m/%d/%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%d.%m.%Y %H:%M"]))
def test_any_format_round_trips_to_unix_seconds(tmp_path_factory, moments, fmt):
    """Whatever the dates and the format, the stored seconds are calendar.timegm of what was written."""
    f = tmp_path_factory.mktemp("ts") / "log.csv"
    moments = [m.replace(microsecond=0, second=0 if "%S" not in fmt else m.second) for m in moments]
    lines = ["user,item,time"] + [f"1,{k},{m.strftime(fmt)}" for k, m in enumerate(moments)]
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    got = read_source(f, columns=Columns(time_format=fmt)).parts["all"].timestamp
    assert got.tolist() == [calendar.timegm(m.timetuple()) for m in moments]
