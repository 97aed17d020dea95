// h2probe: Go net/http over TLS with ALPN h2 against faultserver (standard library only).
//
//	h2probe CAFILE URL SCENARIO [URL SCENARIO ...]
//
// Go's standard library speaks HTTP/2 over TLS only (h2c needs golang.org/x/net, which is
// not available offline). Each URL SCENARIO pair is a "run" with its own Transport (its own
// connection); the runs go at once. One JSON line per request on standard output:
//
//	{"run":0,"req":"/1","status":200,"proto":"HTTP/2.0","ms":12}
//	{"run":0,"req":"/f","error":"*url.Error","message":"Get \"https://...\": ...","ms":3}
//
// Transport: the CA file as the only root, ForceAttemptHTTP2 (a custom TLS config turns
// HTTP/2 off otherwise), ResponseHeaderTimeout 2 s, each request's context 3 s.
//
// Scenarios: get2 (GET /1, then GET /f on the same connection), burst3 (GET /s-0, /s-1,
// /s-2 at once), upload (POST /up with a 200 KiB body), race100 (100 tries, each a new
// Transport: GET /w-N, then GET /r-N on the same connection), race100at (the same, the two
// requests sent at once).
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

var out sync.Mutex
var roots *x509.CertPool

type line struct {
	Run     int    `json:"run"`
	Req     string `json:"req"`
	Status  int    `json:"status,omitempty"`
	Proto   string `json:"proto,omitempty"`
	Error   string `json:"error,omitempty"`
	Message string `json:"message,omitempty"`
	Ms      int64  `json:"ms"`
}

func emit(l line) {
	b, _ := json.Marshal(l)
	out.Lock()
	defer out.Unlock()
	fmt.Println(string(b))
}

func newClient() *http.Client {
	transport := &http.Transport{
		TLSClientConfig:       &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2:     true,
		ResponseHeaderTimeout: 2 * time.Second,
	}
	return &http.Client{Transport: transport}
}

func send(c *http.Client, run int, base, method, path string, body []byte) {
	l := line{Run: run, Req: path}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, method, base+path, reader)
	if err == nil {
		var resp *http.Response
		resp, err = c.Do(req)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			l.Status = resp.StatusCode
			l.Proto = resp.Proto
		}
	}
	l.Ms = time.Since(start).Milliseconds()
	if err != nil {
		l.Status = 0
		l.Error = fmt.Sprintf("%T", err)
		l.Message = err.Error()
	}
	emit(l)
}

func runScenario(run int, base, scenario string) {
	switch scenario {
	case "get2":
		c := newClient()
		send(c, run, base, "GET", "/1", nil)
		send(c, run, base, "GET", "/f", nil)
	case "burst3":
		c := newClient()
		var wg sync.WaitGroup
		for i := 0; i < 3; i++ {
			wg.Add(1)
			go func(path string) {
				defer wg.Done()
				send(c, run, base, "GET", path, nil)
			}(fmt.Sprintf("/s-%d", i))
		}
		wg.Wait()
	case "upload":
		send(newClient(), run, base, "POST", "/up", make([]byte, 200*1024))
	case "race100":
		for i := 0; i < 100; i++ {
			c := newClient()
			send(c, run, base, "GET", fmt.Sprintf("/w-%d", i), nil)
			send(c, run, base, "GET", fmt.Sprintf("/r-%d", i), nil)
			c.CloseIdleConnections()
		}
	case "race100at":
		for i := 0; i < 100; i++ {
			c := newClient()
			var wg sync.WaitGroup
			for _, path := range []string{fmt.Sprintf("/w-%d", i), fmt.Sprintf("/r-%d", i)} {
				wg.Add(1)
				go func(path string) {
					defer wg.Done()
					send(c, run, base, "GET", path, nil)
				}(path)
			}
			wg.Wait()
			c.CloseIdleConnections()
		}
	default:
		emit(line{Run: run, Req: "-", Error: "usage", Message: "unknown scenario: " + scenario})
	}
}

func main() {
	args := os.Args[1:]
	if len(args) < 3 || len(args)%2 != 1 {
		fmt.Fprintln(os.Stderr, "usage: h2probe CAFILE URL SCENARIO [URL SCENARIO ...]")
		os.Exit(2)
	}
	pem, err := os.ReadFile(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	roots = x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		fmt.Fprintln(os.Stderr, "no certificate in", args[0])
		os.Exit(2)
	}
	args = args[1:]
	var wg sync.WaitGroup
	for i := 0; i < len(args); i += 2 {
		wg.Add(1)
		go func(run int, base, scenario string) {
			defer wg.Done()
			runScenario(run, base, scenario)
		}(i/2, args[i], args[i+1])
	}
	wg.Wait()
}
