package osdp

import (
	"fmt"
	"time"

	"go.bug.st/serial"
)

// readTimeout bounds one read, so that the loop notices a torn packet, a
// silent link and cancellation.
const readTimeout = 50 * time.Millisecond

type serialPort struct{ serial.Port }

// OpenSerial opens an RS-485 adapter (or any tty) at 8N1 and baud.
func OpenSerial(device string, baud int) (Port, error) {
	p, err := serial.Open(device, &serial.Mode{BaudRate: baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit})
	if err != nil {
		return nil, fmt.Errorf("osdp: open %s: %w", device, err)
	}
	if err := p.SetReadTimeout(readTimeout); err != nil {
		p.Close()
		return nil, fmt.Errorf("osdp: %s: %w", device, err)
	}
	return serialPort{p}, nil
}

func (s serialPort) SetBaud(baud int) error {
	return s.SetMode(&serial.Mode{BaudRate: baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit})
}
