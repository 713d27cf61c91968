// multiecho: goecho (a fast gorilla/websocket echo server) on a range of ports, with pongs
// held for -pong-delay if asked. One port per target lets bench/persistent_load.py tell its
// targets apart on the wire by port, with URLs that carry no path (wsmon treats a URL path as
// a possible token and scrubs it from every log line). Delayed pongs give targets a
// non-trivial round trip; this server's timer is not the truth (it may wake late): the
// benchmark reads round trips off a capture. Built into bench/bin/ by persistent_load.py with
// Debian's golang-go and golang-github-gorilla-websocket-dev, as build-goref builds goecho.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

var up = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on")
	ports := flag.String("ports", "18767", "port, or range FIRST-LAST, to listen on")
	delay := flag.Duration("pong-delay", 0, "hold each pong this long (0: at once, as goecho)")
	flag.Parse()
	first, last, err := portRange(*ports)
	if err != nil {
		fmt.Fprintln(os.Stderr, "multiecho:", err)
		os.Exit(2)
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		if *delay > 0 {
			c.SetPingHandler(func(data string) error {
				payload := []byte(data)
				// WriteControl may be called concurrently with the reader and the writer.
				time.AfterFunc(*delay, func() {
					c.WriteControl(websocket.PongMessage, payload, time.Now().Add(5*time.Second))
				})
				return nil
			})
		}
		for {
			t, m, err := c.ReadMessage()
			if err != nil {
				return
			}
			c.WriteMessage(t, m)
		}
	})
	listeners := make([]net.Listener, 0, last-first+1)
	for p := first; p <= last; p++ {
		l, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(p)))
		if err != nil {
			fmt.Fprintln(os.Stderr, "multiecho:", err)
			os.Exit(1)
		}
		listeners = append(listeners, l)
	}
	for _, l := range listeners {
		go http.Serve(l, handler)
	}
	fmt.Printf("listening on %s ports %d-%d\n", *host, first, last)
	select {}
}

func portRange(text string) (int, int, error) {
	a, b, found := strings.Cut(text, "-")
	first, err := strconv.Atoi(a)
	if err != nil {
		return 0, 0, fmt.Errorf("bad port %q", a)
	}
	last := first
	if found {
		if last, err = strconv.Atoi(b); err != nil {
			return 0, 0, fmt.Errorf("bad port %q", b)
		}
	}
	if first < 1 || last > 65535 || last < first {
		return 0, 0, fmt.Errorf("bad port range %q", text)
	}
	return first, last, nil
}
