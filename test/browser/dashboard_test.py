#!/usr/bin/python3
"""The ops dashboard in headless Chromium (Selenium), against test/programs/ops_demo.

Proves: the page loads with no console errors and shows the counts of the demo's known
workload; replaying a dead task from the page moves it back to due; pausing and resuming
the namespace and a task type from the page reach the store; a payload holding
<script> and <b> elements is shown as text (no script runs, no element is created); with a
token the page asks for it, refuses a wrong one and shows the data with the right one.
With a redis-server (the demo's --redis-url): the stream view shows the stream's length,
group, pending and lag and its dead letter (an <img onerror> in its fields shown as text);
replaying it from the page puts it back in the stream (Redis: length 6, dead-letter stream
empty; the page: lag 1); the queue view shows the dead count, and its dead letters are
replayed (Redis: the item back in the queue) and purged (Redis: none left) from the page.
Task events (the demo writes them): a task's detail shows its timeline (bad-1: scheduled,
started, dead with its reason; flaky-1: its failed first try and its second; gone-1, cancelled
and gone from the store, still has its timeline); the Events view lists the demo's 28 events
newest first and filters them by kind and by task id with exact rows; a failure reason
holding <script> is shown as text (no script runs); with --events-off the page says events are
off instead of showing an empty history.

Usage: dashboard_test.py OPS_DEMO [--screenshots DIR]
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

DEMO = sys.argv[1]
SHOTS = sys.argv[sys.argv.index('--screenshots') + 1] if '--screenshots' in sys.argv else None
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
        print('FAIL: ' + message, flush=True)


class Demo:
    def __init__(self, *args):
        self.log = tempfile.NamedTemporaryFile(prefix='ops_demo', suffix='.log', delete=False)
        self.process = subprocess.Popen([DEMO, *args], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            with open(self.log.name) as f:
                m = re.search(r'ready (\d+)', f.read())
            if m:
                self.port = int(m.group(1))
                self.url = 'http://127.0.0.1:%d' % self.port
                return
            if self.process.poll() is not None:
                raise RuntimeError('ops_demo exited: ' + open(self.log.name).read())
            time.sleep(0.02)
        raise RuntimeError('ops_demo did not get ready')

    def api(self, path, token=None):
        req = urllib.request.Request(self.url + path)
        if token:
            req.add_header('Authorization', 'Bearer ' + token)
        with urllib.request.urlopen(req) as res:
            return json.load(res)

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=20)
        os.unlink(self.log.name)


class Redis:
    """A throwaway redis-server on a free port (no persistence), queried with redis-cli."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix='dashboard_redis')
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            self.port = s.getsockname()[1]
        self.process = subprocess.Popen(
            ['redis-server', '--port', str(self.port), '--bind', '127.0.0.1', '--save', '',
             '--appendonly', 'no', '--dir', self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if self.cli('PING') == 'PONG':
                    return
            except subprocess.CalledProcessError:
                pass
            time.sleep(0.05)
        raise RuntimeError('redis-server did not start')

    def url(self):
        return 'redis://127.0.0.1:%d' % self.port

    def cli(self, *args):
        return subprocess.run(['redis-cli', '-p', str(self.port), *args], check=True,
                              capture_output=True, text=True).stdout.strip()

    def stop(self):
        self.process.kill()
        self.process.wait(timeout=20)
        shutil.rmtree(self.dir, ignore_errors=True)


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = '/usr/bin/chromium'
    for arg in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu',
                '--window-size=1200,900', '--disable-extensions'):
        options.add_argument(arg)
    options.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    return webdriver.Chrome(service=Service('/usr/bin/chromedriver'), options=options)


def wait_loaded(driver, view, timeout=15):
    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script('return document.body.dataset.loaded') == view)


def count(driver, field):
    # The overview re-renders on its refresh timer: an element found just before a render is
    # stale after it, so look it up again (a render takes milliseconds).
    selector = 'tr[data-ns="demo"] td[data-field="%s"]' % field
    for attempt in range(20):
        try:
            return driver.find_element(By.CSS_SELECTOR, selector).text
        except StaleElementReferenceException:
            if attempt == 19:
                raise
            time.sleep(0.05)


def shot(driver, name):
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        driver.save_screenshot(os.path.join(SHOTS, name))


def console_errors(driver):
    return [e for e in driver.get_log('browser') if e['level'] == 'SEVERE']


def test_open_endpoint(driver):
    demo = Demo()
    try:
        driver.get(demo.url + '/')
        wait_loaded(driver, 'overview')
        check(count(driver, 'scheduled') == '3', 'scheduled is %s, not 3' % count(driver, 'scheduled'))
        check(count(driver, 'due') == '0', 'due is not 0')
        check(count(driver, 'in_flight') == '0', 'in flight is not 0')
        check(count(driver, 'dead') == '2', 'dead is %s, not 2' % count(driver, 'dead'))
        health = driver.find_element(By.CSS_SELECTOR, '#health-table tr[data-dependency="store"]').text
        check('up' in health, 'store is not shown up: ' + health)
        next_due = driver.find_element(By.ID, 'next-due').text
        check('report-hourly' in next_due, 'next due tasks not shown: ' + next_due)
        # Let the overview refresh once, so the charts have two samples to draw.
        WebDriverWait(driver, 10).until(
            lambda d: d.execute_script('return state.samples.length') >= 2)
        shot(driver, 'dashboard-overview.png')

        # Escaping: the payload of bad-1 holds <script> and <b>; both must show as text.
        driver.get(demo.url + '/#dead?ns=demo')
        wait_loaded(driver, 'dead')
        payload = driver.find_element(By.CSS_SELECTOR, 'tr[data-task="bad-1"] pre.payload').text
        check('<script>window.__corvo_xss = 1</script><b>bold</b>' in payload,
              'payload not shown as text: ' + payload)
        check(driver.execute_script('return window.__corvo_xss') is None, 'the payload script ran')
        check(len(driver.find_elements(By.CSS_SELECTOR, '#dead-table b, #dead-table script')) == 0,
              'the payload created elements')
        shot(driver, 'dashboard-dead-letters.png')

        # Replay bad-2 from the page: it leaves the dead letters and is due again.
        driver.find_element(By.CSS_SELECTOR, 'tr[data-task="bad-2"] button.replay').click()
        WebDriverWait(driver, 10).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, 'tr[data-task="bad-2"]')) == 0)
        task = demo.api('/api/task?ns=demo&id=bad-2')
        check(task['state'] == 'scheduled' and task['attempts'] == 0,
              'bad-2 after replay: %s' % task)
        driver.get(demo.url + '/#overview')
        driver.refresh()
        wait_loaded(driver, 'overview')
        check(count(driver, 'due') == '1', 'due after replay is %s, not 1' % count(driver, 'due'))
        check(count(driver, 'dead') == '1', 'dead after replay is not 1')
        check(count(driver, 'scheduled') == '4', 'scheduled after replay is not 4')

        driver.get(demo.url + '/#schedule?ns=demo&q=report')
        wait_loaded(driver, 'schedule')
        rows = driver.find_elements(By.CSS_SELECTOR, 'tr[data-task]')
        check([r.get_attribute('data-task') for r in rows] == ['report-hourly', 'report-2', 'report-3'],
              'search for "report" found %s' % [r.get_attribute('data-task') for r in rows])
        shot(driver, 'dashboard-schedule.png')

        # Pause and resume from the page (POST with the CSRF token): the namespace, then a type.
        def paused():
            n = demo.api('/api/overview')['namespaces'][0]
            return n['paused'], n['paused_types']

        # The page re-renders after each action: an element found a moment ago may be
        # replaced, so every lookup is retried while it is stale.
        def settle(condition):
            WebDriverWait(driver, 10, ignored_exceptions=(StaleElementReferenceException,)).until(
                condition)

        def act(by, what, action):
            settle(lambda d: action(d.find_element(by, what)) or True)

        act(By.CSS_SELECTOR, '#pauses > button[data-action="pause"]', lambda e: e.click())
        settle(lambda d: paused() == (True, []))
        settle(lambda d: 'Claims: paused' in d.find_element(By.ID, 'pauses').text)
        act(By.ID, 'pause-type', lambda e: e.send_keys('report'))
        act(By.ID, 'pause-type-button', lambda e: e.click())
        settle(lambda d: paused() == (True, ['report']))
        settle(lambda d: len(
            d.find_elements(By.CSS_SELECTOR, 'span[data-paused-type="report"] button')) == 1)
        act(By.CSS_SELECTOR, 'span[data-paused-type="report"] button', lambda e: e.click())
        settle(lambda d: paused() == (True, []))
        settle(lambda d: len(
            d.find_elements(By.CSS_SELECTOR, '#pauses > button[data-action="resume"]')) == 1)
        act(By.CSS_SELECTOR, '#pauses > button[data-action="resume"]', lambda e: e.click())
        settle(lambda d: paused() == (False, []))
        driver.get(demo.url + '/#task?ns=demo&id=bad-1')
        wait_loaded(driver, 'task')
        detail = driver.find_element(By.ID, 'task-detail').text
        check('refused task bad-1' in detail and 'dead' in detail, 'task detail: ' + detail)
        shot(driver, 'dashboard-task.png')
        errors = console_errors(driver)
        check(errors == [], 'console errors: %s' % errors)
    finally:
        demo.stop()


def event_rows(driver, table):
    """(kind, task or '', attempt, reason) of each row of an events table, in page order."""
    out = []
    for row in driver.find_elements(By.CSS_SELECTOR, '#%s tbody tr' % table):
        cells = row.find_elements(By.TAG_NAME, 'td')
        reason = row.find_element(By.CSS_SELECTOR, 'td[data-field="reason"]').text
        if table == 'events-table':  # Time, Kind, Task, Type, Attempt, Reason, Source, Shard
            out.append((cells[1].text, cells[2].text, cells[4].text, reason))
        else:  # Time, Kind, Attempt, Due, Reason, Source
            out.append((cells[1].text, '', cells[2].text, reason))
    return out


def open_view(driver, url, view):
    """Loads `url` afresh and waits for `view`: a mere hash change between two pages of the
    same view would leave the previous one's data-loaded in place."""
    driver.get('about:blank')
    driver.get(url)
    wait_loaded(driver, view)


BAD_1_REASON = 'refused task bad-1: <script>window.__corvo_xss = 3</script>'


def test_events(driver):
    demo = Demo()
    try:
        driver.get('about:blank')
        driver.get_log('browser')
        # ---- a task's timeline: oldest first ----
        open_view(driver, demo.url + '/#task?ns=demo&id=bad-1', 'task')
        rows = event_rows(driver, 'task-events')
        check(rows == [('scheduled', '', '', ''), ('started', '', '1', ''),
                       ('dead', '', '1', BAD_1_REASON)], 'bad-1 timeline: %s' % rows)
        check(driver.execute_script('return window.__corvo_xss') is None, 'the reason ran a script')
        check(len(driver.find_elements(By.CSS_SELECTOR, '#task-events script')) == 0,
              'the reason created a script element')
        sources = {td.text for td in driver.find_elements(By.CSS_SELECTOR, '#task-events td:last-child')}
        check(sources == {'ops-demo'}, 'event sources: %s' % sources)
        shot(driver, 'dashboard-task-events.png')
        open_view(driver, demo.url + '/#task?ns=demo&id=flaky-1', 'task')
        rows = event_rows(driver, 'task-events')
        check(rows == [('scheduled', '', '', ''), ('started', '', '1', ''),
                       ('failed', '', '1', 'not yet'), ('started', '', '2', ''),
                       ('succeeded', '', '2', '')], 'flaky-1 timeline: %s' % rows)
        # gone-1 was cancelled: no task any more, its events remain.
        open_view(driver, demo.url + '/#task?ns=demo&id=gone-1', 'task')
        check('No task gone-1 in demo now' in driver.find_element(By.ID, 'task-gone').text,
              'gone-1 not reported gone')
        rows = event_rows(driver, 'task-events')
        check(rows == [('scheduled', '', '', ''), ('cancelled', '', '', '')],
              'gone-1 timeline: %s' % rows)

        # ---- the events view: newest first, 28 events ----
        open_view(driver, demo.url + '/#events?ns=demo', 'events')
        summary = driver.find_element(By.ID, 'events-summary').text
        check(summary == 'Events 1–28 of 28, newest first.', 'summary: ' + summary)
        rows = event_rows(driver, 'events-table')
        check(len(rows) == 28, '%d event rows, not 28' % len(rows))
        expected = sorted(
            [('scheduled', t, '', '') for t in
             ('report-hourly', 'report-2', 'report-3', 'ok-1', 'ok-2', 'ok-3', 'ok-4',
              'flaky-1', 'bad-1', 'bad-2', 'gone-1')] +
            [('cancelled', 'gone-1', '', '')] +
            [('started', 'ok-%d' % i, '1', '') for i in range(1, 5)] +
            [('succeeded', 'ok-%d' % i, '1', '') for i in range(1, 5)] +
            [('started', 'flaky-1', '1', ''), ('failed', 'flaky-1', '1', 'not yet'),
             ('started', 'flaky-1', '2', ''), ('succeeded', 'flaky-1', '2', '')] +
            [('started', 'bad-1', '1', ''), ('dead', 'bad-1', '1', BAD_1_REASON),
             ('started', 'bad-2', '1', ''), ('dead', 'bad-2', '1', 'refused task bad-2')])
        check(sorted(rows) == expected, 'events view rows: %s' % rows)
        # The 12 oldest (the bottom rows) are the schedules and the cancel, written before any
        # run; the newest row ends a run.
        check({r[0] for r in rows[-12:]} == {'scheduled', 'cancelled'},
              'oldest rows: %s' % rows[-12:])
        check(rows[0][0] in ('succeeded', 'dead'), 'newest row: %s' % (rows[0],))
        check(driver.execute_script('return window.__corvo_xss') is None, 'a reason ran a script')
        shot(driver, 'dashboard-events.png')

        # ---- filter by kind, then by task id, from the form ----
        def settle(condition):
            WebDriverWait(driver, 10, ignored_exceptions=(StaleElementReferenceException,)).until(
                condition)

        Select(driver.find_element(By.ID, 'events-kind')).select_by_value('dead')
        driver.find_element(By.ID, 'events-filter').click()
        settle(lambda d: 'kind=dead' in d.current_url and d.execute_script(
            'return document.body.dataset.loaded') == 'events' and
            len(event_rows(d, 'events-table')) == 2)
        rows = event_rows(driver, 'events-table')
        check(sorted(rows) == [('dead', 'bad-1', '1', BAD_1_REASON),
                               ('dead', 'bad-2', '1', 'refused task bad-2')],
              'dead events: %s' % rows)
        Select(driver.find_element(By.ID, 'events-kind')).select_by_value('')
        driver.find_element(By.ID, 'events-task').send_keys('flaky-1')
        driver.find_element(By.ID, 'events-filter').click()
        settle(lambda d: 'task=flaky-1' in d.current_url and 'kind=dead' not in d.current_url and
               len(event_rows(d, 'events-table')) == 5)
        rows = event_rows(driver, 'events-table')
        check(rows == [('succeeded', 'flaky-1', '2', ''), ('started', 'flaky-1', '2', ''),
                       ('failed', 'flaky-1', '1', 'not yet'), ('started', 'flaky-1', '1', ''),
                       ('scheduled', 'flaky-1', '', '')], 'flaky-1 events: %s' % rows)
        # A task id links to its detail.
        driver.find_element(By.CSS_SELECTOR, '#events-table tr[data-kind="failed"] a').click()
        wait_loaded(driver, 'task')
        # flaky-1 succeeded, so it is gone from the store; its timeline remains.
        check('No task flaky-1 in demo now' in driver.find_element(By.ID, 'task-gone').text,
              'the link did not open flaky-1')
        check(len(event_rows(driver, 'task-events')) == 5, 'flaky-1 timeline after the link')
        # The views of flaky-1 and gone-1 asked for tasks the store no longer holds: those
        # 404s (logged by Chromium as failed loads) are expected; nothing else is.
        gone = re.compile(r'/api/task\?ns=demo&id=(flaky-1|gone-1) - Failed to load resource: '
                          r'the server responded with a status of 404')
        errors = [e for e in console_errors(driver) if not gone.search(e['message'])]
        check(errors == [], 'console errors: %s' % errors)
    finally:
        demo.stop()

    # ---- events off: the page says so ----
    demo = Demo('--events-off')
    try:
        open_view(driver, demo.url + '/#events?ns=demo', 'events')
        off = driver.find_element(By.ID, 'events-off').text
        check(off == "task events are off for namespace 'demo' (scheduler.events.enabled is "
                     "false): nothing is recorded to show", 'events off: ' + off)
        check(len(driver.find_elements(By.ID, 'events-table')) == 0, 'an events table with events off')
        open_view(driver, demo.url + '/#task?ns=demo&id=bad-1', 'task')
        check('task events are off' in driver.find_element(By.ID, 'task-events-off').text,
              'the task view does not say events are off')
        check('refused task bad-1' in driver.find_element(By.ID, 'task-detail').text,
              'the task detail is missing with events off')
    finally:
        demo.stop()


def test_token(driver):
    demo = Demo('--token', 'tok-123')
    try:
        driver.execute_script('sessionStorage.clear()') if driver.current_url.startswith('http') else None
        driver.get(demo.url + '/')
        wait_loaded(driver, 'login')
        check(driver.find_element(By.ID, 'login').is_displayed(), 'no token form')
        check(not driver.find_element(By.ID, 'main').is_displayed(), 'data shown without a token')
        field = driver.find_element(By.ID, 'token')
        field.send_keys('wrong')
        driver.find_element(By.ID, 'token-submit').click()
        WebDriverWait(driver, 10).until(
            lambda d: d.find_element(By.ID, 'login-error').text == 'That token was refused.')
        field.clear()
        field.send_keys('tok-123')
        driver.find_element(By.ID, 'token-submit').click()
        wait_loaded(driver, 'overview')
        check(count(driver, 'dead') == '2', 'counts not shown with the token')
    finally:
        demo.stop()


def test_streams_and_queues(driver):
    redis = Redis()
    demo = None
    try:
        demo = Demo('--redis-url', redis.url())
        stream, dead_stream = '{demo}:orders', '{demo}:orders:dlq'
        check(redis.cli('XLEN', stream) == '5', 'stream length in Redis is not 5')
        check(redis.cli('XLEN', dead_stream) == '1', 'stream dead letters in Redis: not 1')

        def settle(condition):
            WebDriverWait(driver, 10, ignored_exceptions=(StaleElementReferenceException,)).until(
                condition)

        # The previous page (another demo, stopped) may have logged errors: start clean.
        driver.get('about:blank')
        driver.get_log('browser')

        # ---- the stream view: length, group, pending, lag, dead letters ----
        driver.get(demo.url + '/#streams')
        wait_loaded(driver, 'streams')
        main = driver.find_element(By.ID, 'main').text
        check(stream + ' (5 entries)' in main, 'stream length not shown: ' + main)
        group = driver.find_element(By.CSS_SELECTOR, 'tr[data-group="billing"]').text
        check(group.startswith('billing 0 0 '), 'group row (pending 0, lag 0): ' + group)
        check('worker-1 (0, ' in group, 'consumer not shown: ' + group)
        check('Dead letters in %s: 1 ' % dead_stream in main, 'dead letters not shown: ' + main)
        shot(driver, 'dashboard-streams.png')

        # ---- its dead letters: escaped fields, replay from the page ----
        driver.find_element(By.LINK_TEXT, 'show').click()
        wait_loaded(driver, 'stream-dead')
        rows = driver.find_elements(By.CSS_SELECTOR, 'tr[data-dead]')
        check(len(rows) == 1, '%d stream dead letters shown, not 1' % len(rows))
        row = rows[0].text
        check('billing' in row and 'payment refused for' in row, 'dead letter row: ' + row)
        check('<img src=x onerror="window.__corvo_xss=2">' in row, 'fields not shown as text: ' + row)
        check(len(driver.find_elements(By.CSS_SELECTOR, '#main img')) == 0, 'the fields made an img')
        check('null' not in driver.find_element(By.ID, 'main').text.replace(row, ''),
              'stray text on the page: ' + driver.find_element(By.ID, 'main').text)
        check(driver.execute_script('return window.__corvo_xss') is None, 'the fields ran a script')
        shot(driver, 'dashboard-stream-dead-letters.png')
        driver.find_element(By.CSS_SELECTOR, 'tr[data-dead] button.replay').click()
        settle(lambda d: len(d.find_elements(By.CSS_SELECTOR, 'tr[data-dead]')) == 0)
        settle(lambda d: 'replayed' in d.find_element(By.ID, 'status').text)
        check(redis.cli('XLEN', stream) == '6', 'stream length after replay is not 6')
        check(redis.cli('XLEN', dead_stream) == '0', 'the dead letter is still in Redis')
        last = redis.cli('XREVRANGE', stream, '+', '-', 'COUNT', '1')
        check('order.poison' in last, 'the replayed entry is not the last one: ' + last)
        driver.get(demo.url + '/#streams')
        driver.refresh()
        wait_loaded(driver, 'streams')
        group = driver.find_element(By.CSS_SELECTOR, 'tr[data-group="billing"]').text
        check(group.startswith('billing 0 1 '), 'group after replay (pending 0, lag 1): ' + group)
        check(stream + ' (6 entries)' in driver.find_element(By.ID, 'main').text,
              'length after replay not shown')

        # ---- the queue view and its dead letters: replay one, purge the other ----
        driver.get(demo.url + '/#queues')
        wait_loaded(driver, 'queues')

        def queue_cell(field):
            return driver.find_element(
                By.CSS_SELECTOR, 'tr[data-queue="jobs"] td[data-field="%s"]' % field).text

        check(queue_cell('depth') == '0', 'queue depth is %s, not 0' % queue_cell('depth'))
        check(queue_cell('processing') == '0', 'processing is not 0')
        check(queue_cell('dead') == '2', 'queue dead is %s, not 2' % queue_cell('dead'))
        shot(driver, 'dashboard-queues.png')
        driver.find_element(By.CSS_SELECTOR, 'tr[data-queue="jobs"] td[data-field="dead"] a').click()
        wait_loaded(driver, 'queue-dead')
        rows = driver.find_elements(By.CSS_SELECTOR, '#queue-dead-table tr[data-item]')
        bodies = sorted(r.find_element(By.CSS_SELECTOR, 'pre.payload').text for r in rows)
        check(bodies == ['poison-a', 'poison-b'], 'queue dead letters shown: %s' % bodies)
        check(all('cannot handle poison' in r.text for r in rows), 'reasons not shown')
        shot(driver, 'dashboard-queue-dead-letters.png')
        ids = {r.find_element(By.CSS_SELECTOR, 'pre.payload').text: r.get_attribute('data-item')
               for r in rows}
        driver.find_element(
            By.CSS_SELECTOR, 'tr[data-item="%s"] button.replay' % ids['poison-a']).click()
        settle(lambda d: len(d.find_elements(By.CSS_SELECTOR, '#queue-dead-table tr[data-item]')) == 1)
        settle(lambda d: d.find_element(By.ID, 'status').text == 'replayed 1')
        check(redis.cli('LLEN', 'jobs') == '1', 'the replayed item is not in the queue')
        check(redis.cli('LINDEX', 'jobs', '0').endswith('poison-a'), 'another item is in the queue')
        check(redis.cli('LLEN', '{jobs}:dead') == '1', 'dead letters in Redis after replay: not 1')
        driver.find_element(
            By.CSS_SELECTOR, 'tr[data-item="%s"] button.purge' % ids['poison-b']).click()
        settle(lambda d: len(d.find_elements(By.CSS_SELECTOR, '#queue-dead-table tr[data-item]')) == 0)
        settle(lambda d: d.find_element(By.ID, 'status').text == 'purged 1')
        check(redis.cli('LLEN', '{jobs}:dead') == '0', 'the purged dead letter is still in Redis')
        check(redis.cli('LLEN', 'jobs') == '1', 'the purge touched the queue')
        driver.get(demo.url + '/#queues')
        driver.refresh()
        wait_loaded(driver, 'queues')
        check(queue_cell('depth') == '1' and queue_cell('dead') == '0',
              'queue after replay and purge: depth %s, dead %s' % (queue_cell('depth'),
                                                                   queue_cell('dead')))
        errors = console_errors(driver)
        check(errors == [], 'console errors: %s' % errors)
    finally:
        if demo:
            demo.stop()
        redis.stop()


def main():
    started = time.time()
    driver = browser()
    try:
        test_open_endpoint(driver)
        test_events(driver)
        test_token(driver)
        if shutil.which('redis-server') and shutil.which('redis-cli'):
            test_streams_and_queues(driver)
        else:
            check(False, 'redis-server and redis-cli are needed for the stream and queue views')
    finally:
        driver.quit()
    print('dashboard_test: %d failure(s) in %.1f s' % (len(failures), time.time() - started))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
