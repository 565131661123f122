.PHONY: up down test test-fast install logs validate lock

up:  ## set up a fresh machine and start gateway + worker; waits for /health
	@scripts/start.sh

down:  ## stop what `make up` started
	@scripts/stop.sh

test:  ## install what the tests need and run the whole suite (every tier; minutes per tier at the end)
	@scripts/test.sh

test-fast:  ## the inner loop: the tiers that need no stack and no model (unit, db, browser)
	@scripts/test.sh --fast

lock:  ## re-resolve the pinned versions in requirements/ (an upgrade: review the diff, make test, commit)
	@scripts/lock.sh

install:  ## only the set-up (venv, packages, Chromium, Redis, .env, migrations)
	@scripts/setup.sh

logs:
	@tail -n 50 -f logs/*.log

validate:  ## check the running stack end to end (pass/fail table); under compose: scripts/validate-deployment.sh --compose
	@scripts/validate-deployment.sh
