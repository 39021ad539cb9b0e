package sales_test

import (
	"testing"

	"tenantgraph/internal/apitest"
	"tenantgraph/internal/platform/dbtest"
)

// The package's tests share one database: the HTTP tests reach it through the
// real server (srv), the invariant tests (db_test.go) directly (database).
var (
	srv      *apitest.Server
	database *dbtest.Database
)

func TestMain(m *testing.M) { apitest.MainDB(m, &srv, &database) }
