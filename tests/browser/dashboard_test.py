#!/usr/bin/env python3
"""The dashboard as a person uses it, in real headless Chromium (issue 5, browser test).

Starts `coffre serve --demo` on a free port with a fresh data folder, signs in with the admin
token from <data>/admin-token, then drives seed 000's flow: discover, register two VMs (the two
`web01` of different cloud services), create a daily policy, protect both, back one up now and
watch the job complete on its page without a reload, see the dashboard counts change, open the
recovery points, browse the point's file systems (its OS disk is a GPT image with an ext4 and a
vfat partition) and download a file and a folder (.tar) through Chromium, and restore the point
as a new VM, and read the About page. A screenshot of every tab goes to the artifacts folder.
Any JavaScript console error (Chromium's browser log at SEVERE) fails the test.

With --https the server answers HTTPS with its self-signed certificate (--tls-self-signed), which
Chromium trusts by its key's hash, and the About page must show the fingerprint it printed.

Usage: dashboard_test.py --coffre PATH/TO/coffre [--artifacts DIR] [--keep-data] [--no-demo] [--https]
"""

import argparse
import json
import os
import re
import shutil
import ssl
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

JOB_TIMEOUT = 180  # seconds a job may take (the demo disks are small)

# The sample VMs the test needs when `serve --demo` is not available: name, cloud service, power.
FALLBACK_VMS = [("web01", "prod", "running"), ("web01", "test", "running"), ("legacy01", "prod", "stopped")]


def page_replaced(old):
    """EC.staleness_of, also when Chrome reports the element's detachment as an inspector error
    ("Node with given id does not belong to the document") instead of a stale reference: the
    old page is gone either way."""
    def condition(_driver):
        try:
            old.is_enabled()
            return False
        except StaleElementReferenceException:
            return True
        except WebDriverException as error:
            if "does not belong to the document" in str(error):
                return True
            raise
    return condition


class Failure(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def supports_demo(coffre):
    help_text = subprocess.run([coffre, "serve", "--help"], capture_output=True, text=True).stdout
    return "--demo" in help_text


def write_fallback_fabric(data):
    """VM folders in the local fabric's format (docs/local-fabric.md): small sparse disks with data."""
    for name, service, power in FALLBACK_VMS:
        folder = os.path.join(data, "fabric", service, name)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "os.img"), "wb") as disk:
            disk.truncate(8 << 20)
            disk.write((f"{service}/{name} sample disk\n" * 4096).encode())
            disk.seek(4 << 20)
            disk.write(os.urandom(256 << 10))
        with open(os.path.join(folder, "vm.json"), "w") as f:
            json.dump({"name": name, "cloudService": service, "powerState": power,
                       "agentVersion": "2.7", "disks": ["os.img"]}, f)


def make_partitioned_disk(path, work):
    """prod/web01's OS disk as a VM has one: GPT, an ext4 and a vfat partition with known files
    (sfdisk, mkfs.ext4 -d, mkfs.vfat and mtools; no root needed). Returns the source folders."""
    ext4, vfat = os.path.join(work, "ext4"), os.path.join(work, "vfat")
    os.makedirs(os.path.join(ext4, "etc"))
    os.makedirs(os.path.join(ext4, "home", "ana"))
    os.makedirs(os.path.join(vfat, "EFI", "BOOT"))
    with open(os.path.join(ext4, "etc", "hosts"), "w") as f:
        f.write("10.1.2.3 web01.prod\n")
    os.chmod(os.path.join(ext4, "etc", "hosts"), 0o640)
    with open(os.path.join(ext4, "home", "ana", "notes.txt"), "w") as f:
        f.write("backups that can be read\n" * 100)
    os.symlink("notes.txt", os.path.join(ext4, "home", "ana", "latest"))
    with open(os.path.join(vfat, "EFI", "BOOT", "BOOTX64.EFI"), "wb") as f:
        f.write(os.urandom(50_000))
    size = os.path.getsize(path)
    script = f"""
        set -euo pipefail
        rm -f '{path}'; truncate -s {size} '{path}'
        printf 'label: gpt\\nstart=2048,size=49152,type=L\\nstart=51200,size=49152,type=U\\n' | sfdisk -q '{path}'
        mkfs.ext4 -q -F -E offset=1048576 -d '{ext4}' '{path}' 24576k
        mkfs.vfat --offset 51200 '{path}' 24576 >/dev/null 2>&1
        cd '{vfat}' && mcopy -s -i '{path}@@26214400' EFI ::/
        """
    subprocess.run(["bash", "-c", script], check=True)
    return ext4, vfat


class Server:
    def __init__(self, coffre, artifacts, demo=True, https=False):
        self.data = tempfile.mkdtemp(prefix="coffre-browser-")
        self.port = free_port()
        self.https = https
        self.base = f"{'https' if https else 'http'}://127.0.0.1:{self.port}"
        args = [coffre, "serve", "--port", str(self.port), "--data", self.data]
        if https:
            args.append("--tls-self-signed")
        if demo and supports_demo(coffre):
            args.append("--demo")
        else:
            print("writing the sample VMs here (without serve --demo)")
            write_fallback_fabric(self.data)
        self.log = open(os.path.join(artifacts, "server.log"), "w")
        environment = dict(os.environ, COFFRE_RUN_DIR=os.path.join(self.data, "run"))
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=environment)
        self.token = self._wait_until_ready()
        self.fingerprint = self._printed_fingerprint() if https else None
        # Before discovery: prod/web01's OS disk gets file systems to browse.
        self.source = make_partitioned_disk(os.path.join(self.data, "fabric", "prod", "web01", "os.img"),
                                            tempfile.mkdtemp(prefix="coffre-browser-source-"))

    @property
    def certificate(self):
        return os.path.join(self.data, "tls", "coffre.crt")

    def _printed_fingerprint(self):
        with open(self.log.name) as log:
            match = re.search(r"SHA-256 fingerprint ([0-9A-F:]{95})", log.read())
        if not match:
            raise Failure("coffre serve --tls-self-signed printed no fingerprint; see server.log")
        return match.group(1)

    def spki_hash(self):
        """base64 SHA-256 of the certificate's public key: what Chromium's
        --ignore-certificate-errors-spki-list trusts (the test's stand-in for adding the
        self-signed certificate to a browser's trust store)."""
        script = (f"openssl x509 -in '{self.certificate}' -pubkey -noout | openssl pkey -pubin -outform der"
                  " | openssl dgst -sha256 -binary | base64")
        return subprocess.run(["bash", "-c", script], check=True, capture_output=True, text=True).stdout.strip()

    def _wait_until_ready(self):
        deadline = time.time() + 60
        token_file = os.path.join(self.data, "admin-token")
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise Failure(f"coffre serve exited with {self.process.returncode}; see server.log")
            try:
                context = ssl.create_default_context(cafile=self.certificate) if self.https else None
                with urllib.request.urlopen(self.base + "/login", timeout=2, context=context) as response:
                    if response.status == 200 and os.path.exists(token_file):
                        return open(token_file).read().strip()
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.3)
        raise Failure("coffre serve did not answer within 60 s")

    def stop(self, keep_data):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        if not keep_data:
            shutil.rmtree(self.data, ignore_errors=True)


class Flow:
    def __init__(self, driver, server, artifacts):
        self.driver = driver
        self.server = server
        self.artifacts = artifacts
        self.shots = 0
        self.console_errors = []

    # -- helpers ---------------------------------------------------------------------------

    def open(self, path):
        self.driver.get(self.server.base + path)
        self.collect_console()

    def find(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def finds(self, css):
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def wait(self, condition, timeout=20, message=""):
        return WebDriverWait(self.driver, timeout, poll_frequency=0.2).until(condition, message)

    def submit(self, css):
        """Clicks a button or link and waits for the next page to load."""
        old = self.find("html")
        self.find(css).click()
        self.wait(page_replaced(old), message=f"no new page after clicking {css}")
        self.wait(lambda d: d.execute_script("return document.readyState") == "complete")
        self.collect_console()

    def tab(self, name, ready):
        """Opens a tab by its link and checks the page has the element `ready` (an id)."""
        self.submit(f"#tab-{name}")
        self.expect(self.finds(f"#{ready}"), f"the {name} tab should show #{ready}")

    def screenshot(self, name):
        self.shots += 1
        path = os.path.join(self.artifacts, f"{self.shots:02d}-{name}.png")
        self.driver.save_screenshot(path)
        print(f"  screenshot {path}")

    def collect_console(self):
        for entry in self.driver.get_log("browser"):
            if entry.get("level") == "SEVERE":
                self.console_errors.append(f"{self.driver.current_url}: {entry.get('message')}")

    def expect(self, condition, message):
        if not condition:
            raise Failure(message)

    def count(self, element_id):
        return int(self.find(f"#{element_id} .count").text)

    def wait_for_badges(self, expected):
        """Waits until every job badge on the page shows a finished status (they update live)."""
        def finished(driver):
            texts = [badge.text for badge in driver.find_elements(By.CSS_SELECTOR, "#job-table .status")]
            return texts and all(t in ("Succeeded", "Failed", "Cancelled") for t in texts) and texts
        texts = self.wait(finished, timeout=JOB_TIMEOUT, message="jobs did not finish")
        self.expect(all(t == expected for t in texts), f"jobs ended {texts}, expected all {expected}")

    # -- the flow --------------------------------------------------------------------------

    def run(self):
        print("sign in")
        self.open("/")
        self.expect("/login" in self.driver.current_url, f"an anonymous visit should land on /login, got {self.driver.current_url}")
        self.screenshot("login")
        self.find("#token").send_keys("not-a-valid-token")
        self.submit("#sign-in")
        self.expect(self.finds(".error-box"), "a wrong token should be refused on the login page")
        self.find("#token").send_keys(self.server.token)
        self.submit("#sign-in")
        self.expect(self.finds("#tab-overview.active"), "after sign-in the Dashboard tab should show")
        protected_before = self.count("count-protected")
        succeeded_before = self.count("jobs-succeeded")
        self.expect(protected_before == 0, f"a new vault protects nothing, the dashboard says {protected_before}")
        self.screenshot("dashboard-empty")

        print("discover")
        self.tab("vms", "discover")
        self.submit("#discover")
        self.wait_for_job_page("Succeeded")
        self.screenshot("discovery-job")

        print("register the two web01")
        self.tab("vms", "vm-table")
        rows = {row.get_attribute("data-vm"): row for row in self.finds("#vm-table tbody tr[data-vm]")}
        for key in ("prod/web01", "test/web01", "prod/legacy01"):
            self.expect(key in rows, f"discovery should list {key}; the table has {sorted(rows)}")
        self.screenshot("registered-items-discovered")
        for key in ("prod/web01", "test/web01"):
            self.find(f"input[name=vm][value='{key}']").click()
        self.submit("#register")
        self.wait_for_badges("Succeeded")
        self.screenshot("registration-started")

        print("a stopped VM is refused with the seed's error")
        self.tab("vms", "vm-table")
        self.find("input[name=vm][value='prod/legacy01']").click()
        self.submit("#register")
        self.wait_for_badges("Failed")
        self.tab("vms", "vm-table")
        legacy = self.find("tr[data-vm='prod/legacy01']").text
        self.expect("VMNotRunning" in legacy, f"prod/legacy01 should show VMNotRunning, shows: {legacy}")
        for key in ("prod/web01", "test/web01"):
            self.expect("Registered" in self.find(f"tr[data-vm='{key}']").text, f"{key} should be registered")
        self.screenshot("registered-items")

        print("create a daily policy")
        self.tab("policies", "policy-form")
        self.find("#name").send_keys("daily-web")
        self.find("#frequency-daily").click()
        self.driver.execute_script("document.getElementById('time').value = '21:30'")
        keep = self.find("#keepDays")
        keep.clear()
        keep.send_keys("14")
        self.find("#keepWeeks").send_keys("8")
        self.submit("#create-policy")
        policy_row = self.find("tr[data-policy='daily-web']").text
        self.expect("daily 21:30 UTC" in policy_row, f"the policy row should show its schedule: {policy_row}")
        self.screenshot("policies")

        print("protect both")
        self.tab("protected", "protect-form")
        for key in ("prod/web01", "test/web01"):
            self.find(f"#protect-form input[name=vm][value='{key}']").click()
        Select(self.find("#policy")).select_by_value("daily-web")
        self.submit("#protect")
        self.wait_for_badges("Succeeded")
        self.tab("protected", "item-table")
        for key in ("prod/web01", "test/web01"):
            row = self.find(f"#item-table tr[data-vm='{key}']").text
            self.expect("pending initial backup" in row, f"{key} should be pending initial backup: {row}")
        self.screenshot("protected-items-pending")

        self.tab("overview", "count-protected")
        self.expect(self.count("count-protected") == 2, "the dashboard should count 2 protected VMs")
        self.expect(self.find("#count-pending").text == "2", "the dashboard should count 2 pending initial backups")
        self.screenshot("dashboard-protected")

        print("back up prod/web01 now and watch the job")
        self.tab("protected", "item-table")
        self.submit("button.backup-now[data-vm='prod/web01']")
        self.expect(self.finds("#job[data-job-id]"), "backup now should open the job's page")
        self.driver.execute_script("window.coffreNoReload = 'same page'")
        seen = self.watch_job()
        self.expect(self.driver.execute_script("return window.coffreNoReload") == "same page",
                    "the job page reloaded: progress must update in place")
        steps = [row.text for row in self.finds("#job-steps tr")]
        self.expect(any("Commit recovery point" in s for s in steps), f"the steps should end with the commit: {steps}")
        self.expect(len(seen) > 1 or "InProgress" in seen[0],
                    f"the page should have shown the running job, then its end (saw {seen})")
        self.screenshot("backup-job-succeeded")

        print("the dashboard counts changed")
        self.tab("overview", "count-protected")
        self.expect(self.find("#count-pending").text == "1", "one VM should still be pending its initial backup")
        succeeded_after = self.count("jobs-succeeded")
        self.expect(succeeded_after >= succeeded_before + 5,
                    f"succeeded jobs in 24 h should grow by 5 (discovery, 2 registrations, 2 protections) plus the backup: "
                    f"{succeeded_before} → {succeeded_after}")
        self.screenshot("dashboard-after-backup")
        self.submit("#jobs-succeeded")
        self.expect(Select(self.find("select[name=status]")).first_selected_option.text == "Succeeded",
                    "the count should link to the job list filtered by status")
        self.screenshot("jobs-succeeded")

        print("recovery points")
        self.tab("protected", "item-table")
        row = self.find("#item-table tr[data-vm='prod/web01']")
        self.expect("pending" not in row.text, f"prod/web01 has a point now: {row.text}")
        old = self.find("html")
        row.find_element(By.PARTIAL_LINK_TEXT, "recovery points").click()
        self.wait(page_replaced(old), message="no new page after opening the recovery points")
        self.collect_console()
        points = self.finds("#point-table tbody tr[data-point]")
        self.expect(len(points) == 1, f"prod/web01 should have one recovery point, the page lists {len(points)}")
        cells = points[0].find_elements(By.TAG_NAME, "td")
        blocks_added = int(cells[6].text)
        self.expect(blocks_added > 0, f"the first point adds blocks, the page says {blocks_added}")
        self.expect("On demand" in points[0].text, f"a backup-now point is on demand: {points[0].text}")
        self.screenshot("recovery-points")

        print("browse the point's files and download a file and a folder")
        self.browse_and_download()
        self.submit("#back-to-points")

        print("restore it as a new VM")
        self.submit("#restore")
        self.wait_for_job_page("Succeeded")
        self.expect("web01-restored" in self.find("#job-steps").text, "the restore should name the new VM")
        self.screenshot("restore-job")

        print("verify the point: every block read back and checked")
        self.submit("#job-points-link")
        self.expect(self.find("#point-table td.verified").text == "never", "the point has never been verified")
        self.submit("#verify")
        self.wait_for_job_page("Succeeded")
        self.expect("Verify data" in self.find("#job-steps").text, "the Verify job should show its data check")
        self.screenshot("verify-job")
        self.submit("#job-points-link")
        verified = self.find("#point-table td.verified")
        self.expect(verified.get_attribute("data-verified") == "passed" and "data" in verified.text,
                    f"the point's row should say its data check passed: {verified.text}")
        self.screenshot("recovery-points-verified")
        self.tab("overview", "count-protected")
        self.expect(self.count("count-verified") == 1 and self.count("count-verification-failed") == 0,
                    "the dashboard should count one verified point and no failure")

        print("the charts draw the history API's numbers")
        self.charts()

        self.tab("jobs", "job-table")
        self.screenshot("jobs")

        print("the nodes page: this server alone, alive and leader")
        self.tab("nodes", "node-table")
        rows = self.finds("#node-table tbody tr[data-node]")
        self.expect(len(rows) == 1, f"one node should be listed on the embedded catalog, got {len(rows)}")
        self.expect(rows[0].get_attribute("data-leader") == "true" and rows[0].get_attribute("data-alive") == "true",
                    f"the node should be alive and the leader: {rows[0].text}")
        self.screenshot("nodes")

        print("the about page: the version, and the certificate's fingerprint over HTTPS")
        self.tab("about", "about-table")
        if self.server.fingerprint:
            shown = self.find("#tls-fingerprint").text
            self.expect(shown == self.server.fingerprint,
                        f"the about page should show the fingerprint coffre serve printed: {shown} != {self.server.fingerprint}")
            self.expect(self.driver.current_url.startswith("https://"), f"the page should be served over HTTPS: {self.driver.current_url}")
        else:
            self.expect("plain HTTP" in self.find("#about-certificate").text, "the about page should say HTTPS is off")
        self.screenshot("about")

        self.collect_console()
        if self.console_errors:
            raise Failure("JavaScript console errors:\n  " + "\n  ".join(self.console_errors))

    def api(self, path):
        context = ssl.create_default_context(cafile=self.server.certificate) if self.server.https else None
        request = urllib.request.Request(self.server.base + path, headers={"Authorization": "Bearer " + self.server.token})
        with urllib.request.urlopen(request, timeout=20, context=context) as response:
            return json.loads(response.read())

    def screenshot_of(self, css, name):
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", self.find(css))
        self.screenshot(name)

    def charts(self):
        storage = self.api("/api/v1/history/storage?days=30")
        backups = self.api("/api/v1/history/backups?days=30")
        items = self.api("/api/v1/history/items")
        history = self.api("/api/v1/vms/prod%2Fweb01/history?days=30")
        self.expect(storage["samples"], "a backup should have measured the vault")
        self.expect(len(backups) == 30 and backups[-1]["succeeded"] >= 1, f"today's backups: {backups[-1]}")

        self.tab("overview", "chart-storage")
        sample = storage["samples"][-1]
        for series, key in (("stored", "storedBytes"), ("logical", "logicalBytes")):
            dots = self.finds(f"#chart-storage circle[data-series='{series}'][data-day='{sample['day']}']")
            self.expect(len(dots) == 1 and dots[0].get_attribute("data-bytes") == str(sample[key]),
                        f"the storage chart's {series} mark of {sample['day']} should carry {sample[key]} bytes")
        self.expect(len(self.finds("#chart-storage circle")) == 2 * len(storage["samples"]), "one mark per sample and series")
        days = self.finds("#chart-backups g.day")
        self.expect(len(days) == len(backups), f"one bar per day: {len(days)} for {len(backups)}")
        for group, day in zip(days, backups):
            shown = [group.get_attribute("data-" + k) for k in ("day", "succeeded", "failed", "cancelled")]
            wanted = [day["day"], str(day["succeeded"]), str(day["failed"]), str(day["cancelled"])]
            self.expect(shown == wanted, f"the backup chart shows {shown}, the API says {wanted}")
        self.expect(self.find("#chart-backups figcaption").text and self.finds("#chart-backups table.sr-only"),
                    "the chart has a caption and a table for screen readers")
        self.screenshot_of("#chart-storage", "charts-dashboard")
        old = self.find("html")
        days[-1].find_element(By.CSS_SELECTOR, "rect.hit").click()
        self.wait(page_replaced(old), message="today's bar should link to its jobs")
        self.collect_console()
        self.expect(backups[-1]["day"] in self.find("#day-filter").text, "the jobs page should be filtered to that day")
        self.expect(len(self.finds("#job-table tbody tr[data-job]")) >= backups[-1]["succeeded"],
                    "the day's backup jobs should be listed")
        self.screenshot("charts-day-jobs")

        self.tab("protected", "chart-item-storage")
        bar = self.find("#chart-item-storage rect[data-vm='prod/web01']")
        wanted = next(row for row in items if row["vm"] == "prod/web01")
        self.expect(bar.get_attribute("data-bytes") == str(wanted["bytesOnlyHere"]) and int(wanted["bytesOnlyHere"]) > 0,
                    f"prod/web01's bar should carry the {wanted['bytesOnlyHere']} bytes only its points hold")
        self.screenshot_of("#chart-item-storage", "charts-item-storage")

        self.open("/vms/prod%2Fweb01/points")
        marks = self.finds("#chart-timeline circle.point")
        self.expect(sorted(m.get_attribute("data-point") for m in marks) == sorted(p["id"] for p in history["points"]),
                    "the timeline should mark every point the API lists")
        self.expect(all("on-demand" in m.get_attribute("class") for m in marks), "backup-now points are hollow (on demand)")
        bars = self.finds("#chart-durations rect[data-series='duration']")
        self.expect(sorted(b.get_attribute("data-job") for b in bars) == sorted(r["job"] for r in history["backups"]),
                    "one duration bar per backup the API lists")
        for run in history["backups"]:
            written = self.find(f"#chart-transfers rect[data-job='{run['job']}'][data-series='written']")
            self.expect(written.get_attribute("data-value") == str(run["writtenBytes"]), "the transfer bar carries the written bytes")
        self.screenshot_of("#chart-timeline", "charts-recovery-points")

    def browse_and_download(self):
        ext4, vfat = self.server.source
        self.submit("#point-table a.files-link")
        self.expect(self.finds("#file-table tr[data-name='os.img']"), "the point's root should list its disk os.img")
        self.submit("#file-table tr[data-name='os.img'] a.folder-link")
        kinds = {row.get_attribute("data-name"): row.text for row in self.finds("#file-table tbody tr[data-name]")}
        self.expect("ext4" in kinds.get("part1", "") and "vfat" in kinds.get("part2", ""),
                    f"os.img should show part1 (ext4) and part2 (vfat): {kinds}")
        self.screenshot("point-partitions")
        self.submit("#file-table tr[data-name='part1'] a.folder-link")
        self.submit("#file-table tr[data-name='etc'] a.folder-link")
        hosts = self.find("#file-table tr[data-name='hosts']").text
        self.expect("-rw-r-----" in hosts, f"hosts should keep its mode 0640: {hosts}")
        self.screenshot("point-files")

        downloads = tempfile.mkdtemp(prefix="coffre-browser-downloads-")
        self.driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads})
        self.find("#file-table tr[data-name='hosts'] a.download-link").click()
        with open(os.path.join(ext4, "etc", "hosts"), "rb") as f:
            self.expect(self.downloaded(downloads, "hosts") == f.read(), "the downloaded hosts differs from the source")

        # Up to part1 by the path's links, then home as a .tar.
        self.submit("#crumbs a:nth-of-type(3)")
        self.find("#file-table tr[data-name='home'] a.download-link").click()
        archive = os.path.join(downloads, "home.tar")
        self.downloaded(downloads, "home.tar")
        listing = subprocess.run(["tar", "-tvf", archive], capture_output=True, text=True, check=True).stdout
        self.expect("home/ana/latest -> notes.txt" in listing and "home/ana/notes.txt" in listing,
                    f"the folder's tar should hold notes.txt and the link latest: {listing}")
        extracted = tempfile.mkdtemp(prefix="coffre-browser-extracted-")
        subprocess.run(["tar", "-xf", archive, "-C", extracted], check=True)
        with open(os.path.join(ext4, "home", "ana", "notes.txt"), "rb") as a, \
                open(os.path.join(extracted, "home", "ana", "notes.txt"), "rb") as b:
            self.expect(a.read() == b.read(), "notes.txt from the tar differs from the source")

        # The vfat partition, through Coffre's FAT reader.
        self.submit("#crumbs a:nth-of-type(2)")
        self.submit("#file-table tr[data-name='part2'] a.folder-link")
        self.submit("#file-table tr[data-name='EFI'] a.folder-link")
        self.submit("#file-table tr[data-name='BOOT'] a.folder-link")
        self.find("#file-table tr[data-name='BOOTX64.EFI'] a.download-link").click()
        with open(os.path.join(vfat, "EFI", "BOOT", "BOOTX64.EFI"), "rb") as f:
            self.expect(self.downloaded(downloads, "BOOTX64.EFI") == f.read(), "BOOTX64.EFI differs from the source")
        self.screenshot("point-vfat")
        shutil.rmtree(downloads, ignore_errors=True)
        shutil.rmtree(extracted, ignore_errors=True)

    def downloaded(self, folder, name, timeout=60):
        """Waits for Chromium to finish downloading `name` into `folder`; returns its bytes."""
        path = os.path.join(folder, name)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if os.path.exists(path) and not os.path.exists(path + ".crdownload"):
                with open(path, "rb") as f:
                    return f.read()
            time.sleep(0.2)
        raise Failure(f"Chromium did not download {name} within {timeout} s (folder holds {os.listdir(folder)})")

    def wait_for_job_page(self, expected):
        self.expect(self.finds("#job[data-job-id]"), f"expected a job page, got {self.driver.current_url}")
        seen = self.watch_job()
        self.expect(seen[-1] == expected, f"the job ended {seen[-1]}, expected {expected}: "
                    + " ".join(e.text for e in self.finds("#job-error")))

    def watch_job(self):
        """Watches #job-status change in place until the job ends; returns the statuses seen."""
        seen = []
        deadline = time.time() + JOB_TIMEOUT
        while time.time() < deadline:
            status = self.find("#job-status").text
            if not seen or seen[-1] != status:
                seen.append(status)
                print(f"  job status: {status}; {self.find('#job-progress-text').text}")
            if status in ("Succeeded", "Failed", "Cancelled"):
                return seen
            time.sleep(0.1)
        raise Failure(f"the job did not finish within {JOB_TIMEOUT} s (saw {seen})")


def make_driver(trusted_spki=None):
    options = webdriver.ChromeOptions()
    if trusted_spki:
        options.add_argument(f"--ignore-certificate-errors-spki-list={trusted_spki}")
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(service=service, options=options)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coffre", required=True, help="the coffre executable (coffre-agent beside it)")
    parser.add_argument("--artifacts", default=".build/browser-artifacts")
    parser.add_argument("--keep-data", action="store_true", help="keep the server's data folder")
    parser.add_argument("--no-demo", action="store_true", help="write the sample VMs here instead of `serve --demo`")
    parser.add_argument("--https", action="store_true",
                        help="serve HTTPS with --tls-self-signed; Chromium trusts that certificate's key")
    args = parser.parse_args()
    os.makedirs(args.artifacts, exist_ok=True)
    for old in os.listdir(args.artifacts):
        if old.endswith(".png") or old == "failure.html":
            os.remove(os.path.join(args.artifacts, old))

    server = Server(os.path.abspath(args.coffre), args.artifacts, demo=not args.no_demo, https=args.https)
    driver = None
    flow = None
    ok = False
    try:
        driver = make_driver(server.spki_hash() if args.https else None)
        flow = Flow(driver, server, args.artifacts)
        flow.run()
        ok = True
    except (Failure, TimeoutException, AssertionError) as error:
        print(f"FAILED: {error}")
        if flow:
            flow.screenshot("failure")
            with open(os.path.join(args.artifacts, "failure.html"), "w") as f:
                f.write(driver.page_source)
    except Exception:
        traceback.print_exc()
        if flow:
            flow.screenshot("failure")
    finally:
        if driver:
            driver.quit()
        server.stop(keep_data=args.keep_data or not ok)
        if not ok:
            print(f"server data kept in {server.data}; log in {args.artifacts}/server.log")
    print(f"artifacts in {args.artifacts}")
    print("1 passed, 0 failed" if ok else "0 passed, 1 failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
