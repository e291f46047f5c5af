package config

import (
	"fmt"
	"io"
	"net/url"
	"strings"

	"gopkg.in/yaml.v3"
)

// WriteAnnotated writes cfg as YAML, every value followed by a comment
// naming the file and line it came from, or "default". src is what Sources
// returned for cfg.Path. Resolved secrets are not part of the YAML form of
// a Config, and the user, password and query values inside a URL are
// written as "xxxxx".
func WriteAnnotated(w io.Writer, cfg *Config, src map[string]string) error {
	var root yaml.Node
	if err := root.Encode(cfg); err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	annotate(&root, "", src)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	return enc.Close()
}

func annotate(m *yaml.Node, prefix string, src map[string]string) {
	if m.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		p := k.Value
		if prefix != "" {
			p = prefix + "." + k.Value
		}
		redact(v)
		if v.Kind == yaml.MappingNode && len(v.Content) > 0 {
			annotate(v, p, src)
			continue
		}
		from, ok := src[p]
		if !ok {
			from = "default"
		}
		if v.Kind == yaml.ScalarNode {
			v.LineComment = from
		} else {
			// A block list or mapping starts on the next line: the key
			// carries the comment.
			k.LineComment = from
		}
	}
}

// redact hides what may be a credential in every URL in n: an http
// actuator's url may carry a token as its user or in its query.
func redact(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode {
		if !strings.Contains(n.Value, "://") {
			return
		}
		u, err := url.Parse(n.Value)
		if err != nil {
			// Unparseable: it cannot be shown safely either.
			n.Value = "xxxxx"
			return
		}
		if u.User != nil {
			u.User = url.User("xxxxx")
		}
		if u.RawQuery != "" {
			q := u.Query()
			for k := range q {
				q[k] = []string{"xxxxx"}
			}
			u.RawQuery = q.Encode()
		}
		n.Value = u.String()
		return
	}
	for _, c := range n.Content {
		redact(c)
	}
}
