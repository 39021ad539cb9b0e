package account_test

import (
	"testing"

	"tenantgraph/internal/apitest"
)

var srv *apitest.Server

func TestMain(m *testing.M) { apitest.Main(m, &srv) }
