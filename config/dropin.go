package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// A fleet shares most of its configuration: the site's part (the Incode
// host, the camera model, the queue bounds) is one drop-in installed on every
// door, and the door's own part (source_id, the GPIO line) another. Drop-ins
// live in <config>.d/*.yaml and are merged, in file-name order, over the main
// file: a mapping merges key by key, anything else (a value, a list such as
// actuator.outputs) replaces what came before.

// DropInDir is the drop-in directory of the configuration file at path.
func DropInDir(path string) string { return path + ".d" }

// DropIns lists the drop-ins of the configuration file at path in the order
// they apply: *.yaml in DropInDir, sorted by name, hidden files skipped (an
// editor's or a package manager's leftovers do not end in .yaml either).
func DropIns(path string) ([]string, error) {
	entries, err := os.ReadDir(DropInDir(path))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config drop-ins: %w", err)
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || filepath.Ext(name) != ".yaml" {
			continue
		}
		out = append(out, filepath.Join(DropInDir(path), name))
	}
	return out, nil
}

// layer is one file of a configuration, decoded as a YAML tree.
type layer struct {
	path string
	root *yaml.Node // the top-level mapping; nil for an empty file
}

// mergeDropIns returns data merged with the drop-ins of path, or data as it
// is when there are none (so that line numbers in problems stay those of
// the file). Each file is checked strictly on its own first, so that a
// problem names the file and line it is on.
func mergeDropIns(path string, data []byte) ([]byte, error) {
	files, err := DropIns(path)
	if err != nil || len(files) == 0 {
		return data, err
	}
	layers, err := readLayers(path, data, files)
	if err != nil {
		return nil, err
	}
	merged := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, l := range layers {
		if l.root != nil {
			mergeMapping(merged, l.root)
		}
	}
	out, err := yaml.Marshal(merged)
	if err != nil {
		return nil, Problems{fmt.Sprintf("merging drop-ins: %v", err)}
	}
	return out, nil
}

// readLayers decodes the main file (data) and the drop-ins, reporting every
// problem of every file at once.
func readLayers(path string, data []byte, dropIns []string) ([]layer, error) {
	var problems Problems
	layers := make([]layer, 0, 1+len(dropIns))
	add := func(name string, data []byte, prefix string) {
		l, p := decodeLayer(name, data)
		for _, s := range p {
			problems = append(problems, prefix+s)
		}
		layers = append(layers, l)
	}
	add(path, data, "")
	for _, f := range dropIns {
		b, err := readDropIn(f)
		if err != nil {
			problems.add("%v", err)
			continue
		}
		add(f, b, f+": ")
	}
	if len(problems) > 0 {
		for i := range problems {
			problems[i] = oneLine(problems[i])
		}
		return nil, problems
	}
	return layers, nil
}

// readDropIn reads a drop-in like the main file (ReadFile bounds its
// size), and first makes sure it is a regular file: a FIFO would block the
// start and a directory cannot be read.
func readDropIn(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("config drop-in: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("config drop-in %s is not a regular file", path)
	}
	return ReadFile(path)
}

// decodeLayer checks one file as strictly as a whole configuration (unknown
// keys, wrong types, a second document) and returns its tree.
func decodeLayer(path string, data []byte) (layer, Problems) {
	l := layer{path: path}
	problems, err := decodeStrict(data, Default())
	if err != nil {
		var p Problems
		if errors.As(err, &p) {
			return l, p
		}
		return l, Problems{err.Error()}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return l, append(problems, fmt.Sprintf("yaml: %s", strings.TrimPrefix(err.Error(), "yaml: ")))
	}
	if len(doc.Content) == 0 {
		return l, problems // empty, or comments only
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return l, append(problems, fmt.Sprintf("line %d: the top level must be sections such as device: and camera:", root.Line))
	}
	l.root = root
	return l, problems
}

// mergeMapping merges src into dst: mappings key by key, anything else
// replaces.
func mergeMapping(dst, src *yaml.Node) {
	for i := 0; i+1 < len(src.Content); i += 2 {
		k, v := src.Content[i], src.Content[i+1]
		j := mappingIndex(dst, k.Value)
		switch {
		case j < 0:
			dst.Content = append(dst.Content, k, v)
		case dst.Content[j+1].Kind == yaml.MappingNode && v.Kind == yaml.MappingNode:
			mergeMapping(dst.Content[j+1], v)
		default:
			dst.Content[j+1] = v
		}
	}
}

func mappingIndex(m *yaml.Node, key string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return i
		}
	}
	return -1
}

// Sources says where each value of the configuration at path comes from:
// the YAML path of every value a file sets ("device.source_id",
// "actuator.outputs") mapped to "file:line" of the last file that set it.
// Values no file sets are defaults.
func Sources(path string) (map[string]string, error) {
	data, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	files, err := DropIns(path)
	if err != nil {
		return nil, err
	}
	layers, err := readLayers(path, data, files)
	if err != nil {
		return nil, err
	}
	src := map[string]string{}
	for _, l := range layers {
		if l.root != nil {
			recordSources(src, l.path, "", l.root)
		}
	}
	return src, nil
}

func recordSources(src map[string]string, file, prefix string, m *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		p := k.Value
		if prefix != "" {
			p = prefix + "." + k.Value
		}
		if v.Kind == yaml.MappingNode && len(v.Content) > 0 {
			recordSources(src, file, p, v)
			continue
		}
		// A value replaces a whole subtree that an earlier file set.
		for q := range src {
			if strings.HasPrefix(q, p+".") {
				delete(src, q)
			}
		}
		src[p] = fmt.Sprintf("%s:%d", file, k.Line)
	}
}
