// probe: Go net/http against faultserver (standard library only).
//
//	probe URL SCENARIO [URL SCENARIO ...]
//
// Each URL SCENARIO pair is a "run" with its own Transport (its own pool); the runs go at
// once. One JSON line per request on standard output:
//
//	{"run":0,"req":"/1","method":"GET","status":200,"ms":12}
//	{"run":0,"req":"/2","method":"POST","error":"*url.Error","message":"Post \"http://...\": EOF",
//	 "chain":["*url.Error","*errors.errorString"],"got_conn":true,"ms":3}
//
// "message" is err.Error(), as an application logs it; "chain" the types errors.Unwrap
// walks through; "got_conn" whether the Transport handed the request a connection
// (httptrace), which tells a wait for the pool from a wait for the answer.
//
// Transport: keep-alive, MaxConnsPerHost 2 (the pool), a 1 s dial timeout,
// ResponseHeaderTimeout 2 s. Scenarios as in D504Probe.java, except burst6: Go has no
// timeout for the wait for a connection, only the request's context, so the first two
// requests (5 s deadline) take both connections, then four more with a 500 ms deadline wait
// for one in vain.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strings"
	"sync"
	"time"
)

var out sync.Mutex

type line struct {
	Run     int      `json:"run"`
	Req     string   `json:"req"`
	Method  string   `json:"method"`
	Status  int      `json:"status,omitempty"`
	Error   string   `json:"error,omitempty"`
	Message string   `json:"message,omitempty"`
	Chain   []string `json:"chain,omitempty"`
	GotConn bool     `json:"got_conn"`
	Reused  bool     `json:"reused"`
	Ms      int64    `json:"ms"`
}

func emit(l line) {
	b, _ := json.Marshal(l)
	out.Lock()
	defer out.Unlock()
	fmt.Println(string(b))
}

func newClient() *http.Client {
	transport := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: time.Second}).DialContext,
		MaxConnsPerHost:       2,
		MaxIdleConnsPerHost:   2,
		ResponseHeaderTimeout: 2 * time.Second,
	}
	return &http.Client{Transport: transport}
}

// send makes one request and reports it; gotConn (may be nil) is closed when the request
// has its connection.
func send(c *http.Client, run int, base, method, path string, deadline time.Duration, gotConn chan struct{}) {
	l := line{Run: run, Req: path, Method: method}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		l.GotConn = true
		l.Reused = info.Reused
		if gotConn != nil {
			close(gotConn)
			gotConn = nil
		}
	}}
	ctx = httptrace.WithClientTrace(ctx, trace)
	var body io.Reader
	if method == "POST" {
		body = strings.NewReader("order=1")
	}
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err == nil {
		var resp *http.Response
		resp, err = c.Do(req)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			l.Status = resp.StatusCode
		}
	}
	l.Ms = time.Since(start).Milliseconds()
	if err != nil {
		l.Status = 0
		l.Error = fmt.Sprintf("%T", err)
		l.Message = err.Error()
		for e := err; e != nil; e = errors.Unwrap(e) {
			l.Chain = append(l.Chain, fmt.Sprintf("%T", e))
		}
	}
	emit(l)
}

const long = 5 * time.Second

func runScenario(run int, base, scenario string) {
	switch scenario {
	case "get":
		send(newClient(), run, base, "GET", "/get", long, nil)
	case "get2", "post2":
		method := map[string]string{"get2": "GET", "post2": "POST"}[scenario]
		c := newClient()
		send(c, run, base, method, "/1", long, nil)
		send(c, run, base, method, "/2", long, nil)
	case "burst6":
		c := newClient()
		var wg sync.WaitGroup
		for i := 0; i < 6; i++ {
			deadline, got := long, make(chan struct{})
			if i >= 2 {
				deadline, got = 500*time.Millisecond, nil
			}
			wg.Add(1)
			go func(path string, got chan struct{}) {
				defer wg.Done()
				send(c, run, base, "GET", path, deadline, got)
			}(fmt.Sprintf("/pool-%d", i), got)
			if got != nil {
				select { // the next request starts once this one holds a connection
				case <-got:
				case <-time.After(long):
				}
			}
		}
		wg.Wait()
	case "seq10":
		c := newClient()
		for i := 0; i < 10; i++ {
			send(c, run, base, "GET", fmt.Sprintf("/seq-%d", i), long, nil)
		}
	case "race20", "race20post":
		method := map[string]string{"race20": "GET", "race20post": "POST"}[scenario]
		for i := 0; i < 20; i++ {
			c := newClient()
			send(c, run, base, method, fmt.Sprintf("/w-%d", i), long, nil)
			send(c, run, base, method, fmt.Sprintf("/r-%d", i), long, nil)
			c.CloseIdleConnections()
		}
	default:
		emit(line{Run: run, Req: "-", Method: "-", Error: "usage", Message: "unknown scenario: " + scenario})
	}
}

func main() {
	args := os.Args[1:]
	if len(args) == 0 || len(args)%2 != 0 {
		fmt.Fprintln(os.Stderr, "usage: probe URL SCENARIO [URL SCENARIO ...]")
		os.Exit(2)
	}
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
