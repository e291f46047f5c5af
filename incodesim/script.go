package incodesim

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// itemKind is what a script item makes the emulator do.
type itemKind int

const (
	kindPass       itemKind = iota + 1 // PASS as the first enrolled person
	kindFail                           // FAIL with a given failureReason
	kindHTTP                           // an error answer with a status code
	kindDelay                          // wait, then decide normally
	kindReset                          // close the connection without answering
	kindHang                           // never answer until the client goes away
	kindHalf                           // half a JSON body, then reset
	kindHTML                           // 200 with an HTML page
	kindGarbage                        // 200 with bytes that are not JSON
	kindWrongShape                     // 200 with JSON of the wrong shape
	kindNoAuthID                       // PASS without authenticationId
	kindDupStatus                      // "status":"FAIL" and then "status":"PASS" in one object
	kindUpperKeys                      // a PASS whose member names are upper case
	kindPassReason                     // a PASS that also carries a failureReason
	kindNoName                         // userinfo without its optional name object
)

// item is one parsed script item.
type item struct {
	text       string // as written, for the request log
	kind       itemKind
	reason     string        // kindFail
	code       int           // kindHTTP
	retryAfter int           // kindHTTP, seconds; -1 when absent
	delay      time.Duration // kindDelay
}

// The endpoints a script item can be aimed at with a prefix such as
// "userinfo:http:503". Unprefixed items go to authenticate.
const (
	epAuthenticate   = "authenticate"
	epAuthentication = "authentication"
	epVerification   = "verification"
	epUserInfo       = "userinfo"
)

var scriptEndpoints = []string{epAuthenticate, epAuthentication, epVerification, epUserInfo}

// script holds one queue of items per endpoint.
type script map[string][]item

// ParseScript parses script items, each one element of items or several
// separated by commas, into a script. An item may start with an endpoint
// name and a colon ("userinfo:http:503"); without one it applies to
// authenticate.
func parseScript(items []string) (script, error) {
	sc := script{}
	var errs []error
	for _, raw := range items {
		for _, text := range strings.Split(raw, ",") {
			text = strings.TrimSpace(text)
			if text == "" {
				continue
			}
			ep, it, err := parseItem(text)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			sc[ep] = append(sc[ep], it)
		}
	}
	return sc, errors.Join(errs...)
}

func parseItem(text string) (string, item, error) {
	ep := epAuthenticate
	body := text
	for _, e := range scriptEndpoints {
		if strings.HasPrefix(text, e+":") {
			ep, body = e, strings.TrimPrefix(text, e+":")
			break
		}
	}
	it := item{text: text, retryAfter: -1}
	name, arg, hasArg := strings.Cut(body, ":")
	bad := func(format string, a ...any) (string, item, error) {
		return "", item{}, fmt.Errorf("script item %q: %s", text, fmt.Sprintf(format, a...))
	}
	noArg := func(k itemKind) (string, item, error) {
		if hasArg {
			return bad("%s takes no argument", name)
		}
		it.kind = k
		return ep, it, nil
	}
	decisionOnly := func() bool { return ep == epAuthenticate }
	switch name {
	case "pass":
		if !decisionOnly() {
			return bad("pass applies to authenticate only")
		}
		return noArg(kindPass)
	case "noauthid":
		if !decisionOnly() {
			return bad("noauthid applies to authenticate only")
		}
		return noArg(kindNoAuthID)
	case "dupstatus", "upperkeys", "passreason":
		if !decisionOnly() {
			return bad("%s applies to authenticate only", name)
		}
		return noArg(map[string]itemKind{"dupstatus": kindDupStatus, "upperkeys": kindUpperKeys, "passreason": kindPassReason}[name])
	case "noname":
		if ep != epUserInfo {
			return bad("noname applies to userinfo only (userinfo:noname)")
		}
		return noArg(kindNoName)
	case "fail":
		if !decisionOnly() {
			return bad("fail applies to authenticate only")
		}
		if !hasArg || arg == "" || strings.ContainsAny(arg, " \"\\") {
			return bad("want fail:<failureReason>, e.g. fail:hasFaceMask")
		}
		it.kind, it.reason = kindFail, arg
		return ep, it, nil
	case "http":
		codeText, opt, hasOpt := strings.Cut(arg, ":")
		code, err := strconv.Atoi(codeText)
		if !hasArg || err != nil || code < 400 || code > 599 {
			return bad("want http:<400..599>[:retry-after=N]")
		}
		it.kind, it.code = kindHTTP, code
		if hasOpt {
			v, ok := strings.CutPrefix(opt, "retry-after=")
			n, err := strconv.Atoi(v)
			if !ok || err != nil || n < 0 || n > 86400 {
				return bad("want retry-after=<seconds>")
			}
			it.retryAfter = n
		}
		return ep, it, nil
	case "delay":
		d, err := time.ParseDuration(arg)
		if !hasArg || err != nil || d < 0 || d > time.Hour {
			return bad("want delay:<duration up to 1h>, e.g. delay:2s")
		}
		it.kind, it.delay = kindDelay, d
		return ep, it, nil
	case "reset":
		return noArg(kindReset)
	case "hang":
		return noArg(kindHang)
	case "half":
		return noArg(kindHalf)
	case "html":
		return noArg(kindHTML)
	case "garbage":
		return noArg(kindGarbage)
	case "wrongshape":
		return noArg(kindWrongShape)
	}
	return bad("unknown item (want pass, fail:<reason>, http:<code>[:retry-after=N], delay:<dur>, reset, hang, half, html, garbage, wrongshape, noauthid, dupstatus, upperkeys, passreason or userinfo:noname)")
}

// texts lists the remaining items in order, with their endpoint prefix.
func (sc script) texts() map[string][]string {
	out := map[string][]string{}
	for _, ep := range scriptEndpoints {
		for _, it := range sc[ep] {
			out[ep] = append(out[ep], it.text)
		}
	}
	return out
}
