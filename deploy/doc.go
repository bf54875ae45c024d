// Package deploy holds the files of the docker-compose demo stack (example
// configs, Prometheus config and alert rules; the demo webhook sink and the
// container health-check helper are cmd/feedmill-sink and
// cmd/feedmill-healthcheck) and the test that checks
// docker-compose.yml without a Docker engine: services, ports, health
// checks, start order, and that every mounted config passes the same
// checks as `feedmill validate` and the connectors' start-up; and that the
// alert rules decode strictly and hold the full-pass alerts.
package deploy
