// cert-manager's CRDs, for server-side checks of the chart's and the overlay's Certificate and
// Issuer: crds.sh takes them from this module's files (deploy/crds/), nothing is built.
module github.com/pf-webhook/pf-webhook/tests/tools/cert-manager

go 1.26.0

require github.com/cert-manager/cert-manager v1.19.1
