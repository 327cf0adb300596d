"""The scheduler's web UI (server-rendered HTML under /ui/) in headless Chromium, driven by
Selenium, on its own multi-process cluster: a long TPC-H query seen while it runs and after it
finished, a failed query with its error, and the nodes page. Screenshots of every page go to
tests/ui/screenshots/ for a human to look at.

Needs Debian's `chromium` and `chromium-driver` (scripts/install-test-deps.sh); no network
(the driver is given explicitly, so selenium-manager never downloads one)."""
import base64
import json
import threading
import time
import urllib.parse
import urllib.request

import adbc_driver_manager
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import REPO, connect, query, running

SHOTS = REPO / "tests" / "ui" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

# About ten seconds on a debug build: the connector generates TPC-H sf1 (6M lineitem rows).
# A join, so that two stages run at once: Ballista's adaptive planner (on by default) creates a
# stage only once its inputs are done, so a plain aggregation shows one stage while it runs.
LONG_SQL = ("SELECT o_orderpriority, count(*), sum(l_extendedprice) FROM tpch.sf1.lineitem "
            "JOIN tpch.sf1.orders ON l_orderkey = o_orderkey GROUP BY o_orderpriority")
FAILING_SQL = "SELECT * FROM tpch.tiny.nope"

# Every page refreshes itself (<meta http-equiv="refresh">): an element found before a refresh
# is stale after it, so every look-up runs inside a wait that retries on that.
RETRIED = (StaleElementReferenceException, NoSuchElementException)


@pytest.fixture(scope="module")
def ui_cluster(request):
    yield from running(request, REPO / "etc")


@pytest.fixture(scope="module")
def driver():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(arg)
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield d
    finally:
        d.quit()


def until(driver, condition, timeout=30, message=""):
    """`condition(driver)` once it is truthy, retried through page refreshes."""
    return WebDriverWait(driver, timeout, poll_frequency=0.2, ignored_exceptions=RETRIED).until(condition, message)


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def queries_matching(cluster, text):
    return [q for q in get_json(f"{cluster.http}/v1/query?" + urllib.parse.urlencode({"query": text}))
            if q["query"] == text]


def screenshot(driver, name):
    """The whole page (beyond the window) as tests/ui/screenshots/`name`."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
    })
    path = SHOTS / name
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.stat().st_size > 5_000, f"{path} looks empty"


def query_rows(driver):
    """The rows of the query list: id, link, state (text and class), user, whole text."""
    rows = []
    for row in driver.find_elements(By.CSS_SELECTOR, "table#queries tr.query-row"):
        cells = row.find_elements(By.TAG_NAME, "td")
        link = cells[0].find_element(By.TAG_NAME, "a")
        rows.append({
            "id": link.text.strip(), "href": link.get_attribute("href"),
            "state": cells[1].text.strip(), "class": cells[1].get_attribute("class").split(),
            "user": cells[2].text.strip(), "text": row.text,
        })
    return rows


def query_page(driver):
    """What the query page shows."""
    title_state = driver.find_element(By.CSS_SELECTOR, "h2 span.state")
    return {
        "id": driver.find_element(By.CSS_SELECTOR, "span#query-id").text.strip(),
        "state": title_state.text.strip(),
        "state_class": title_state.get_attribute("class").split(),
        "sql": [e.text for e in driver.find_elements(By.CSS_SELECTOR, "pre.sql")],
        "nodes": [e.text for e in driver.find_elements(By.CSS_SELECTOR, "svg#stage-graph g.stage-node")],
        "stages": [[c.text.strip() for c in r.find_elements(By.TAG_NAME, "td")]
                   for r in driver.find_elements(By.CSS_SELECTOR, "table#stages tr.stage-row")],
        "tasks": [[c.text.strip() for c in r.find_elements(By.TAG_NAME, "td")]
                  for r in driver.find_elements(By.CSS_SELECTOR, "table#tasks tr.task-row")],
        "plans": [e.text for e in driver.find_elements(By.CSS_SELECTOR, "pre.plan")],
        "errors": [e.text for e in driver.find_elements(By.CSS_SELECTOR, "pre.error")],
    }


def test_running_then_finished_query(ui_cluster, driver):
    cluster = ui_cluster
    outcome = {}

    def run():
        conn = connect(cluster.uri)
        try:
            outcome["rows"] = query(conn, LONG_SQL)
        except Exception as e:  # reported by the main thread
            outcome["error"] = e
        finally:
            conn.close()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        # 1. The query is RUNNING according to the JSON API.
        deadline = time.time() + 60
        seen = []
        while True:
            seen = queries_matching(cluster, LONG_SQL)
            if any(q["state"] == "RUNNING" for q in seen):
                break
            assert "error" not in outcome, f"the long query failed: {outcome['error']}"
            assert not any(q["state"] in ("FINISHED", "FAILED") for q in seen), \
                f"the long query ended before it was seen RUNNING: {seen}"
            assert time.time() < deadline, f"the long query not RUNNING after 60 s: {seen}"
            time.sleep(0.1)
        query_id = next(q["queryId"] for q in seen if q["state"] == "RUNNING")

        # 2. The query list shows it RUNNING; the state filter keeps it and only RUNNING rows.
        driver.get(f"{cluster.http}/ui/")
        row = until(driver, lambda d: next((r for r in query_rows(d) if "tpch.sf1.lineitem" in r["text"]), None),
                    message="no row of the long query in the query list")
        assert row["id"] == query_id
        assert row["state"] == "RUNNING" and "RUNNING" in row["class"], row
        assert row["user"] == "tester"
        assert row["href"] == f"{cluster.http}/ui/query/{query_id}"
        running_count = until(driver, lambda d: d.find_element(By.ID, "running-count").text.strip())
        assert int(running_count) >= 1
        screenshot(driver, "queries.png")
        still = until(driver, lambda d: next((r for r in query_rows(d) if r["id"] == query_id), None))
        assert still["state"] == "RUNNING", "the query ended during the screenshot"

        def filter_running(d):
            Select(d.find_element(By.CSS_SELECTOR, "form select[name=state]")).select_by_value("RUNNING")
            d.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
            return True

        until(driver, filter_running)
        until(driver, lambda d: "state=RUNNING" in d.current_url, message="the filter form was not submitted")
        filtered = until(driver, lambda d: (
            Select(d.find_element(By.CSS_SELECTOR, "form select[name=state]")).first_selected_option.text == "RUNNING"
            and query_rows(d)), message="the RUNNING filter lists nothing")
        assert query_id in [r["id"] for r in filtered], filtered
        assert all(r["state"] == "RUNNING" and "RUNNING" in r["class"] for r in filtered), filtered

        # 3. Its page, while it runs: id, SQL, the stage graph and the stage table.
        def open_query(d):
            d.find_element(By.LINK_TEXT, query_id).click()
            return True

        until(driver, open_query)
        until(driver, lambda d: d.current_url.endswith(f"/ui/query/{query_id}"))

        def running_page(d):
            p = query_page(d)
            shown = len(p["nodes"]) >= 2 and len(p["stages"]) >= 2 and any(t[2] == "RUNNING" for t in p["tasks"])
            return (p["state"] != "RUNNING" or shown) and p

        page = until(driver, running_page, message="no two stages and a running task on the query's page")
        assert page["state"] == "RUNNING", f"the query ended before its page showed two stages: {page}"
        assert "RUNNING" in page["state_class"]
        assert page["id"] == query_id
        assert page["sql"] == [LONG_SQL]
        assert len(page["nodes"]) == len(page["stages"])
        assert all(n.startswith("Stage ") for n in page["nodes"]), page["nodes"]
        assert any(s[1] == "RUNNING" for s in page["stages"]), page["stages"]
        assert page["errors"] == []
        screenshot(driver, "query-running.png")
        # States only move forward: still RUNNING now means RUNNING in the screenshot.
        assert until(driver, query_page)["state"] == "RUNNING", "the query ended during the screenshot"
    finally:
        worker.join(300)

    # 4. Finished: the right answer, and its page with every stage, its tasks and plans.
    assert not worker.is_alive(), "the long query did not end within 300 s"
    assert "error" not in outcome, f"the long query failed: {outcome.get('error')}"
    rows = outcome["rows"]
    assert sorted(r[0] for r in rows) == ["1-URGENT", "2-HIGH", "3-MEDIUM", "4-NOT SPECIFIED", "5-LOW"]
    assert sum(r[1] for r in rows) == 6_001_215

    def finished(d):
        d.get(f"{cluster.http}/ui/query/{query_id}")
        p = query_page(d)
        return p["state"] == "FINISHED" and p

    page = until(driver, finished, message="the query page never showed FINISHED")
    assert page["id"] == query_id and "FINISHED" in page["state_class"]
    assert page["errors"] == []
    assert len(page["stages"]) >= 3 and len(page["nodes"]) == len(page["stages"])
    stage_ids = {s[0] for s in page["stages"]}
    assert all(s[1] == "FINISHED" for s in page["stages"]), page["stages"]
    for s in page["stages"]:
        done, total = s[2].split("/")
        assert done == total and int(total) >= 1, s
    assert page["tasks"], "no task rows"
    # Task column 0 is stage.task.attempt: every stage ran tasks, all finished.
    assert {t[0].split(".")[0] for t in page["tasks"]} == stage_ids, (page["tasks"], stage_ids)
    assert all(t[2] == "FINISHED" for t in page["tasks"]), page["tasks"]
    assert sum(int(t[4]) for t in page["tasks"]) > 0, "no task read any row"
    assert len(page["plans"]) == len(page["stages"]) and all(p.strip() for p in page["plans"])
    assert any("lineitem" in p.lower() for p in page["plans"]), page["plans"]
    screenshot(driver, "query-finished.png")


def execute_unprepared(conn, sql):
    """Runs `sql` as a Flight SQL CommandStatementQuery: the DBAPI cursor's execute() prepares
    the statement first (CreatePreparedStatement), and a statement failing to prepare is not
    a query (see test_failed_prepare_is_a_query)."""
    with conn.cursor() as cur:
        cur.adbc_statement.set_sql_query(sql)
        cur.adbc_statement.execute_query()


def test_failed_query(ui_cluster, driver):
    cluster = ui_cluster
    conn = connect(cluster.uri)
    try:
        with pytest.raises(adbc_driver_manager.Error, match="table 'tpch.tiny.nope' does not exist"):
            execute_unprepared(conn, FAILING_SQL)
    finally:
        conn.close()
    failed = until(driver, lambda d: queries_matching(cluster, FAILING_SQL), timeout=15,
                   message="the failed query is not in /v1/query")
    assert [q["state"] for q in failed] == ["FAILED"], failed
    query_id = failed[0]["queryId"]

    driver.get(f"{cluster.http}/ui/query/{query_id}")
    page = until(driver, query_page)
    assert page["id"] == query_id
    assert page["state"] == "FAILED" and "FAILED" in page["state_class"]
    assert page["sql"] == [FAILING_SQL]
    assert len(page["errors"]) == 1 and "tpch.tiny.nope" in page["errors"][0], page["errors"]
    screenshot(driver, "query-failed.png")

    # The list marks it failed, with its error code.
    driver.get(f"{cluster.http}/ui/?" + urllib.parse.urlencode({"state": "FAILED"}))
    rows = until(driver, query_rows)
    row = next(r for r in rows if r["id"] == query_id)
    assert row["state"] == "FAILED" and "FAILED" in row["class"]
    assert failed[0]["errorCode"] and failed[0]["errorCode"] in row["text"]


def test_failed_prepare_is_a_query(ui_cluster):
    sql = "SELECT * FROM tpch.tiny.nope_prepared"
    conn = connect(ui_cluster.uri)
    try:
        with pytest.raises(adbc_driver_manager.Error, match="nope_prepared"):
            query(conn, sql)
    finally:
        conn.close()
    deadline = time.time() + 5
    while not queries_matching(ui_cluster, sql) and time.time() < deadline:
        time.sleep(0.2)
    assert [q["state"] for q in queries_matching(ui_cluster, sql)] == ["FAILED"]


def test_executors_page(ui_cluster, driver):
    driver.get(f"{ui_cluster.http}/ui/executors")

    def nodes(d):
        rows = [[c.text.strip() for c in r.find_elements(By.TAG_NAME, "td")]
                for r in d.find_elements(By.CSS_SELECTOR, "table#nodes tr.node-row")]
        if len(rows) < 3:
            d.refresh()
            return None
        return rows

    rows = until(driver, nodes, message="fewer than 3 nodes (scheduler + 2 executors)")
    assert len(rows) == 3, rows
    assert sorted(r[1] for r in rows) == ["executor", "executor", "scheduler"], rows
    assert all(r[2] == "active" for r in rows), rows
    executors = [r for r in rows if r[1] == "executor"]
    assert all(r[3].startswith("grpc://127.0.0.1:") and int(r[4]) == 2 for r in executors), executors
    assert len({r[0] for r in executors}) == 2
    screenshot(driver, "executors.png")
