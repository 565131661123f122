.PHONY: up down test install logs

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
