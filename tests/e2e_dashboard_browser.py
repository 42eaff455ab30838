#!/usr/bin/env python3
"""The dashboard in headless Chromium: starts what tests/e2e_dashboard_browser.js drives.

    scripts/install-java && scripts/install-browser
    cargo build --profile test-opt -p saturn-broker -p saturn-admin
    SATURN_BROKER_BIN=target/test-opt/saturn-broker python3 tests/e2e_dashboard_browser.py [--screenshots] [--keep]

Starts `saturn-broker standalone --shards 2` (short delay levels, so retries come fast) with the
dashboard behind an admin password, compiles tests/java/dash/DashClient.java against the Java
client 4.9.8 and runs the browser test with node (playwright-core from .cache/clients/browser,
Debian's /usr/bin/chromium). --screenshots writes a 1280x800 PNG of each page to
docs/screenshots/. Exit status: the browser test's.
"""
import argparse
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import e2e_clients as E  # noqa: E402
import e2e_admin as A  # noqa: E402

PASSWORD, VIEWER_PASSWORD = "dash-br0wser", "dash-v1ewer"
# E2E_JAVA_CLIENT: the .cache/java set of the client (default client-4.9.8; client-5.3.3 also passes)
JAVA_LIB = os.path.join(E.REPO, ".cache", "java", os.environ.get("E2E_JAVA_CLIENT", "client-4.9.8"), "lib")
NODE_MODULES = os.path.join(E.REPO, ".cache", "clients", "browser", "node_modules")
SHOTS = os.path.join(E.REPO, "docs", "screenshots")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--screenshots", action="store_true", help="write a PNG of each page to docs/screenshots/")
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    args = ap.parse_args()
    run_dir = os.path.join(E.REPO, "target", "test-data", "e2e-dashboard-browser-%d" % os.getpid())
    os.makedirs(run_dir, exist_ok=True)
    classes = os.path.join(run_dir, "classes")
    subprocess.run(["javac", "-nowarn", "-cp", JAVA_LIB + "/*", "-d", classes,
                    os.path.join(HERE, "java", "dash", "DashClient.java")], check=True)
    broker = E.Broker(run_dir, "broker")
    port = broker.namesrv_port + 14  # in the broker's free block (shard 1 ends at +9)
    broker.extra_args = ["--dashboard-listen", "127.0.0.1:%d" % port]
    env = dict(os.environ, DASH_PASSWORD=PASSWORD, DASH_VIEWER_PASSWORD=VIEWER_PASSWORD,
               DASH_URL="http://127.0.0.1:%d/" % port, JAVA_CP=classes + os.pathsep + JAVA_LIB + "/*",
               SATURN_ADMIN_BIN=A.ADMIN_BIN, NODE_PATH=NODE_MODULES)
    if args.screenshots:
        os.makedirs(SHOTS, exist_ok=True)
        env["SHOTS"] = SHOTS
    os.environ["SATURN_DASHBOARD_PASSWORD"] = PASSWORD  # the broker reads both from its environment
    os.environ["SATURN_DASHBOARD_READONLY_PASSWORD"] = VIEWER_PASSWORD
    rc = 1
    try:
        broker.start()
        env["NAMESRV"] = broker.namesrv
        p = subprocess.Popen(["node", os.path.join(HERE, "e2e_dashboard_browser.js")], env=env,
                             start_new_session=True)
        E.LIVE.add(p)
        rc = p.wait(timeout=170)
    except subprocess.TimeoutExpired:
        print("dashboard browser e2e: over 170 s, stopped")
    except E.Fail as e:
        print("dashboard browser e2e: %s" % e)
        with open(broker.log_path, errors="replace") as f:
            sys.stderr.write("broker log tail:\n" + "".join(f.readlines()[-20:]))
    finally:
        E.kill_all()
        if not args.keep and rc == 0:
            shutil.rmtree(run_dir, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
