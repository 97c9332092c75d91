package stele

import "testing"

func TestDisplayName(t *testing.T) {
	for typ, want := range map[string]string{
		"incident.opened":      "Incident Opened",
		"api_key.rotated":      "API Key Rotated",
		"auditlog.queried":     "Audit Log Queried",
		"pcap.started":         "PCAP Started",
		"node.config_changed":  "Node Config Changed",
		"user.login_failed":    "User Login Failed",
		"a..b":                 "A B",
		"x1.y_2":               "X1 Y 2",
		"apiary.api_keys_list": "Apiary API Keys List",
	} {
		if got := DisplayName(typ); got != want {
			t.Errorf("DisplayName(%q) = %q, want %q", typ, got, want)
		}
	}
}
