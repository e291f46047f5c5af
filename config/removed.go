package config

import "strings"

// explainRemoved turns the decoder's "field X not found" for a key that
// an earlier kioskd read into what to do instead, so that check-config on
// an old configuration says more than "unknown key".
func explainRemoved(decodeErr string) string {
	switch {
	case strings.Contains(decodeErr, "field attempts_path not found in type config.Capture"):
		return decodeErr + ": capture.attempts_path was removed; the attempt cap is kept in device.state_dir (attempts.json there): delete the key, and set device.state_dir if the directory should differ"
	}
	return decodeErr
}
