// chart-render renders a Helm chart the way `helm template` does, for the chart tests of a machine
// without helm: Go's text/template with sprig's functions plus Helm's own (include, tpl, required,
// toYaml, fromYaml, toJson, fromJson, lookup, fail), values merged like Helm's (-f files over
// values.yaml, a null removes a key) and validated against values.schema.json with gojsonschema,
// the validator Helm 3 uses. Templates whose names start with "_" only define; NOTES.txt is printed
// only with -notes. Builds in GOPATH mode from Debian's Go packages:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o chart-render tools/chart-render/main.go
//
// Faithful to helm v3's pkg/engine (engine.go, funcs.go, files.go) and pkg/chartutil (values.go,
// coalesce.go, jsonschema.go) where the chart uses them; not a general Helm replacement
// (no subcharts, no --set, no hooks; of the Files API Get, GetBytes, Lines and Glob).
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"github.com/xeipuuv/gojsonschema"
	yaml2 "gopkg.in/yaml.v2"
)

type valuesFiles []string

func (v *valuesFiles) String() string     { return strings.Join(*v, ",") }
func (v *valuesFiles) Set(s string) error { *v = append(*v, s); return nil }

func main() {
	var files valuesFiles
	release := flag.String("name", "ebpf-proxy", "release name")
	namespace := flag.String("namespace", "kube-system", "release namespace")
	notes := flag.Bool("notes", false, "print the rendered NOTES.txt instead of the manifests")
	kubeVersion := flag.String("kube-version", "v1.28.0", "the Kubernetes version .Capabilities reports")
	flag.Var(&files, "f", "values file (repeatable; later files win)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: chart-render [-name N] [-namespace NS] [-f values.yaml]... [-notes] CHART_DIR")
		os.Exit(2)
	}
	out, err := render(flag.Arg(0), *release, *namespace, *kubeVersion, files, *notes)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
	os.Stdout.WriteString(out)
}

func readYAMLMap(path string) (map[string]interface{}, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// Helm reads values with sigs.k8s.io/yaml: YAML 1.1 (yaml.v2), then through JSON, so every
	// number is a float64 (1000000 prints as 1e+06 unless a template says int64).
	var m interface{}
	if err := yaml2.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	j, err := json.Marshal(normalize(m))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := map[string]interface{}{}
	if err := json.Unmarshal(j, &out); err != nil {
		return nil, fmt.Errorf("%s: not a map of values: %w", path, err)
	}
	return out, nil
}

// normalize turns yaml's map[interface{}]interface{} (yaml.v2) into string-keyed maps, as Helm's
// values are after its JSON round trip.
func normalize(v interface{}) interface{} {
	switch t := v.(type) {
	case map[string]interface{}:
		for k, e := range t {
			t[k] = normalize(e)
		}
		return t
	case map[interface{}]interface{}:
		m := map[string]interface{}{}
		for k, e := range t {
			m[fmt.Sprint(k)] = normalize(e)
		}
		return m
	case []interface{}:
		for i, e := range t {
			t[i] = normalize(e)
		}
		return t
	default:
		return v
	}
}

// coalesce merges src over dst like chartutil.CoalesceTables: maps merge deeply, anything else is
// replaced, and a null in src deletes the key.
func coalesce(dst, src map[string]interface{}) map[string]interface{} {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
			continue
		}
		if sm, ok := v.(map[string]interface{}); ok {
			if dm, ok := dst[k].(map[string]interface{}); ok {
				dst[k] = coalesce(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
	return dst
}

func render(chartDir, release, namespace, kubeVersion string, files []string, notes bool) (string, error) {
	chartMeta, err := readYAMLMap(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return "", err
	}
	values, err := readYAMLMap(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return "", err
	}
	for _, f := range files {
		over, err := readYAMLMap(f)
		if err != nil {
			return "", err
		}
		values = coalesce(values, over)
	}
	if schema, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json")); err == nil {
		if err := validate(schema, values); err != nil {
			return "", err
		}
	}
	name, _ := chartMeta["name"].(string)
	chart := map[string]interface{}{}
	for k, v := range chartMeta { // Helm exposes Chart.yaml's fields capitalized: .Chart.AppVersion
		chart[strings.ToUpper(k[:1])+k[1:]] = v
	}
	chartFiles, err := loadFiles(chartDir)
	if err != nil {
		return "", err
	}
	parts := strings.SplitN(strings.TrimPrefix(kubeVersion, "v"), ".", 3)
	top := map[string]interface{}{
		"Values":  values,
		"Chart":   chart,
		"Files":   chartFiles,
		"Release": map[string]interface{}{"Name": release, "Namespace": namespace, "Service": "Helm", "IsInstall": true, "IsUpgrade": false, "Revision": 1},
		"Capabilities": map[string]interface{}{
			"KubeVersion": map[string]interface{}{"Version": kubeVersion, "GitVersion": kubeVersion, "Major": parts[0], "Minor": parts[1]},
		},
	}

	tmplDir := filepath.Join(chartDir, "templates")
	entries, err := os.ReadDir(tmplDir)
	if err != nil {
		return "", err
	}
	root := template.New("gotpl")
	root.Option("missingkey=zero") // helm's non-strict mode
	funcs := funcMap(root)
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(tmplDir, e.Name()))
		if err != nil {
			return "", err
		}
		full := name + "/templates/" + e.Name()
		if _, err := root.New(full).Funcs(funcs).Parse(string(data)); err != nil {
			return "", err
		}
		names = append(names, full)
	}
	sort.Strings(names)
	var out strings.Builder
	for _, n := range names {
		base := filepath.Base(n)
		if strings.HasPrefix(base, "_") || (base == "NOTES.txt") != notes {
			continue
		}
		vals := map[string]interface{}{}
		for k, v := range top {
			vals[k] = v
		}
		vals["Template"] = map[string]interface{}{"Name": n, "BasePath": name + "/templates"}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, n, vals); err != nil {
			return "", err
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if notes {
			out.WriteString(text)
			continue
		}
		for _, doc := range splitDocs(text) {
			fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", n, doc)
		}
	}
	return out.String(), nil
}

// splitDocs drops empty documents, as helm's releaseutil.SplitManifests does.
func splitDocs(text string) []string {
	var docs []string
	for _, d := range strings.Split("\n"+text, "\n---") {
		d = strings.TrimSpace(d)
		if d == "" || isOnlyComments(d) {
			continue
		}
		docs = append(docs, d)
	}
	return docs
}

func isOnlyComments(d string) bool {
	for _, l := range strings.Split(d, "\n") {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

func validate(schema []byte, values map[string]interface{}) error {
	doc, err := json.Marshal(values)
	if err != nil {
		return err
	}
	res, err := gojsonschema.Validate(gojsonschema.NewBytesLoader(schema), gojsonschema.NewBytesLoader(doc))
	if err != nil {
		return fmt.Errorf("values.schema.json: %w", err)
	}
	if res.Valid() {
		return nil
	}
	var sb strings.Builder
	sb.WriteString("values don't meet the specifications of the schema(s) in the following chart(s):\n")
	for _, e := range res.Errors() {
		fmt.Fprintf(&sb, "- %s\n", e)
	}
	return fmt.Errorf("%s", sb.String())
}

// funcMap is sprig's text functions without env/expandenv (as Helm removes them) plus Helm's own.
func funcMap(root *template.Template) template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	includedNames := map[string]int{}
	f["include"] = func(name string, data interface{}) (string, error) {
		if includedNames[name] > 1000 {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		includedNames[name]++
		defer func() { includedNames[name]-- }()
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	f["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", fmt.Errorf("cannot parse template %q: %w", text, err)
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, data); err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %w", text, err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	f["required"] = func(msg string, val interface{}) (interface{}, error) {
		if val == nil {
			return val, fmt.Errorf("%s", msg)
		}
		if s, ok := val.(string); ok && s == "" {
			return val, fmt.Errorf("%s", msg)
		}
		return val, nil
	}
	f["fail"] = func(msg string) (string, error) { return "", fmt.Errorf("%s", msg) }
	f["toYaml"] = toYAML
	f["fromYaml"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := yaml2.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return normalize(m).(map[string]interface{})
	}
	f["toJson"] = func(v interface{}) string {
		data, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(data)
	}
	f["fromJson"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	// helm template has no cluster: lookup finds nothing.
	f["lookup"] = func(string, string, string, string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	return f
}

// toYAML is Helm's: sigs.k8s.io/yaml's Marshal (JSON first, then yaml.v2, so keys are sorted and
// field names are JSON's), without the trailing newline.
func toYAML(v interface{}) string {
	j, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	var obj interface{}
	if err := yaml2.Unmarshal(j, &obj); err != nil {
		return ""
	}
	data, err := yaml2.Marshal(obj)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

// files is Helm's .Files: every file of the chart except Chart.yaml, values.yaml,
// values.schema.json and templates/, by its slash-separated path.
type files map[string][]byte

func loadFiles(chartDir string) (files, error) {
	f := files{}
	err := filepath.Walk(chartDir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(chartDir, p)
		rel = filepath.ToSlash(rel)
		if info.IsDir() {
			if rel == "templates" || rel == "charts" {
				return filepath.SkipDir
			}
			return nil
		}
		switch rel {
		case "Chart.yaml", "values.yaml", "values.schema.json":
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		f[rel] = data
		return nil
	})
	return f, err
}

// Get is the file's content, or "" when there is no such file (as Helm's).
func (f files) Get(name string) string { return string(f[name]) }

// GetBytes is the file's content as bytes.
func (f files) GetBytes(name string) []byte { return f[name] }

// Lines is the file split into lines.
func (f files) Lines(name string) []string {
	if f[name] == nil {
		return []string{}
	}
	return strings.Split(string(f[name]), "\n")
}

// Glob is the files whose paths match the pattern (path.Match, as Helm's gobwas/glob for simple patterns).
func (f files) Glob(pattern string) files {
	out := files{}
	for name, data := range f {
		if ok, _ := path.Match(pattern, name); ok {
			out[name] = data
		}
	}
	return out
}
