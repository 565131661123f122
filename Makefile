.PHONY: up down test install logs validate

up:  ## set up a fresh machine and start gateway + worker; waits for /health
	@scripts/start.sh

down:  ## stop what `make up` started
	@scripts/stop.sh

test:  ## install what the tests need and run the whole suite
	@scripts/test.sh

install:  ## only the set-up (venv, packages, Chromium, Redis, .env, migrations)
	@scripts/setup.sh

logs:
	@tail -n 50 -f logs/*.log

validate:  ## check the running stack end to end (pass/fail table); under compose: scripts/validate-deployment.sh --compose
	@scripts/validate-deployment.sh
