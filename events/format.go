package events

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Formats that Writer knows.
const (
	FormatJSONL = "jsonl"
	FormatCSV   = "csv"
)

// CSVHeader is the first row of a CSV export.
var CSVHeader = []string{"id", "seq", "time", "door", "kind", "result", "reason", "deferred",
	"authenticationId", "correlationId", "verificationId", "identityId", "name",
	"credentialFormat", "credentialNumber", "panelAnswer", "latencyMs", "captureId"}

// Writer writes events one by one in a format; Close flushes.
type Writer struct {
	write func(Event) error
	flush func() error
}

// NewWriter writes jsonl (one JSON object a line) or csv (with a header).
func NewWriter(w io.Writer, format string) (*Writer, error) {
	switch format {
	case FormatJSONL:
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		return &Writer{write: func(e Event) error { return enc.Encode(e) }, flush: func() error { return nil }}, nil
	case FormatCSV:
		cw := csv.NewWriter(w)
		if err := cw.Write(CSVHeader); err != nil {
			return nil, err
		}
		return &Writer{write: func(e Event) error { return cw.Write(csvRow(e)) },
			flush: func() error { cw.Flush(); return cw.Error() }}, nil
	}
	return nil, fmt.Errorf("unknown format %q (jsonl or csv)", format)
}

// Write writes one event.
func (w *Writer) Write(e Event) error { return w.write(e) }

// Close flushes what is buffered.
func (w *Writer) Close() error { return w.flush() }

func csvRow(e Event) []string {
	var cf, cn string
	if e.Credential != nil {
		cf, cn = e.Credential.Format, e.Credential.Number
	}
	lat := ""
	if e.LatencyMS != 0 {
		lat = strconv.FormatInt(e.LatencyMS, 10)
	}
	row := []string{e.ID, strconv.FormatUint(e.Seq, 10), e.Time.UTC().Format(time.RFC3339Nano), e.Door,
		string(e.Kind), e.Result, e.Reason, strconv.FormatBool(e.Deferred), e.AuthenticationID,
		e.CorrelationID, e.VerificationID, e.IdentityID, e.Name, cf, cn, e.PanelAnswer, lat, e.CaptureID}
	for i := range row {
		row[i] = cellSafe(row[i])
	}
	return row
}

// cellSafe keeps a spreadsheet from running a name such as "=HYPERLINK(…)"
// as a formula when an export is opened.
func cellSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
