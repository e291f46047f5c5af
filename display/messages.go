package display

import (
	"fmt"
	"slices"
	"strings"
)

// catalog is every message of one language, or nil for an unknown one.
// Keys are "state", "state.reason" for per-reason texts, plus "pass.name"
// (with {name}), "lockout" (with {time}) and "reconnecting" for the page.
func catalog(lang string) map[string]string {
	switch lang {
	case "en":
		return map[string]string{
			"ready":                   "Look at the camera",
			"guidance":                "Look at the camera",
			"guidance.no_face":        "Look at the camera",
			"guidance.too_small":      "Come closer",
			"guidance.too_large":      "Step back",
			"guidance.off_center":     "Centre your face",
			"guidance.too_dark":       "More light needed",
			"guidance.too_bright":     "Too bright — step out of the glare",
			"guidance.low_contrast":   "Face the light",
			"guidance.blurry":         "Hold still",
			"guidance.multiple_faces": "One person at a time",
			"guidance.no_eyes":        "Look straight at the camera",
			"guidance.invalid_frame":  "Please wait…",
			"checking":                "Checking…",
			"pass":                    "Welcome",
			"pass.name":               "Welcome, {name}",
			"fail":                    "Not recognised — try again or use your badge",
			"fail.hasFaceMask":        "Please remove your face mask",
			"fail.hasLenses":          "Please remove your glasses or lenses",
			"fail.spoofAttempt":       "Not recognised — please use your badge",
			"fail.faceMatchFailed":    "No match — try again or use your badge",
			"fail.otherError":         "Something went wrong — please try again",
			"offline":                 "Offline — please use your badge",
			"recorded":                "Recorded — will sync",
			"lockout":                 "Too many attempts — try again in {time}",
			"camera_down":             "Camera unavailable",
			"service_unavailable":     "Service unavailable — please use your badge",
			"fail.panel_denied":       "Access denied — please see reception",
			"fail.panel_no_answer":    "Please wait — or see reception",
			"fail.see_reception":      "Please see reception",
			"reconnecting":            "Reconnecting…",
		}
	case "es":
		return map[string]string{
			"ready":                   "Mire a la cámara",
			"guidance":                "Mire a la cámara",
			"guidance.no_face":        "Mire a la cámara",
			"guidance.too_small":      "Acérquese",
			"guidance.too_large":      "Aléjese un poco",
			"guidance.off_center":     "Centre su cara",
			"guidance.too_dark":       "Se necesita más luz",
			"guidance.too_bright":     "Demasiada luz — apártese del reflejo",
			"guidance.low_contrast":   "Póngase de cara a la luz",
			"guidance.blurry":         "No se mueva",
			"guidance.multiple_faces": "Una persona a la vez",
			"guidance.no_eyes":        "Mire directamente a la cámara",
			"guidance.invalid_frame":  "Espere un momento…",
			"checking":                "Comprobando…",
			"pass":                    "Bienvenido",
			"pass.name":               "Hola, {name}",
			"fail":                    "No reconocido — inténtelo de nuevo o use su tarjeta",
			"fail.hasFaceMask":        "Por favor, quítese la mascarilla",
			"fail.hasLenses":          "Por favor, quítese las gafas o lentes",
			"fail.spoofAttempt":       "No reconocido — use su tarjeta",
			"fail.faceMatchFailed":    "Sin coincidencia — inténtelo de nuevo o use su tarjeta",
			"fail.otherError":         "Algo salió mal — inténtelo de nuevo",
			"offline":                 "Sin conexión — use su tarjeta",
			"recorded":                "Registrado — se sincronizará",
			"lockout":                 "Demasiados intentos — vuelva a intentarlo en {time}",
			"camera_down":             "Cámara no disponible",
			"service_unavailable":     "Servicio no disponible — use su tarjeta",
			"fail.panel_denied":       "Acceso denegado — acuda a recepción",
			"fail.panel_no_answer":    "Espere — o acuda a recepción",
			"fail.see_reception":      "Acuda a recepción",
			"reconnecting":            "Reconectando…",
		}
	}
	return nil
}

// MessageKeys lists every key display.messages may override, sorted.
func MessageKeys() []string {
	en := catalog("en")
	keys := make([]string, 0, len(en))
	for k := range en {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// messages resolves texts for one language with the config's overrides.
type messages map[string]string

func newMessages(lang string, overrides map[string]string) (messages, error) {
	base := catalog(lang)
	if base == nil {
		return nil, fmt.Errorf("language %q is not en or es", lang)
	}
	m := make(messages, len(base))
	for k, v := range base {
		m[k] = v
	}
	var unknown []string
	for k, v := range overrides {
		if _, ok := base[k]; !ok {
			unknown = append(unknown, k)
			continue
		}
		if strings.TrimSpace(v) == "" {
			return nil, fmt.Errorf("messages.%s: empty message", k)
		}
		m[k] = v
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, fmt.Errorf("messages: unknown key(s) %s (known: %s)",
			strings.Join(unknown, ", "), strings.Join(MessageKeys(), ", "))
	}
	return m, nil
}

// text is the message for state and reason, falling back to the state's
// generic message for reasons it does not know, so that a new API reason
// never reaches the screen verbatim.
func (m messages) text(state State, reason string) string {
	if reason != "" {
		// "pass.name" is the greeting template, not a reason's text.
		if t, ok := m[state.String()+"."+reason]; ok && reason != "name" {
			return t
		}
	}
	return m[state.String()]
}
