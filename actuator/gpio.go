package actuator

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"periph.io/x/conn/v3/driver/driverreg"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/host/v3/gpioioctl"

	"github.com/kioskd/kioskd/config"
)

// gpioDriver holds one line of a gpiochip for the life of the process.
type gpioDriver struct {
	pin       gpio.PinIO
	activeLow bool
	where     string // "gpio gpiochip0 line 17", for errors
}

func (d *gpioDriver) set(on bool, _ Event) error {
	// gpioioctl has no active-low request flag, so the inversion is ours.
	if err := d.pin.Out(gpio.Level(on != d.activeLow)); err != nil {
		return fmt.Errorf("%s: %w", d.where, err)
	}
	return nil
}

func (d *gpioDriver) close() error {
	if c, ok := d.pin.(interface{ Close() }); ok {
		c.Close()
	}
	return nil
}

func gpioWhere(o config.Output) string {
	if o.Line != nil {
		return fmt.Sprintf("gpio %s line %d", o.Chip, *o.Line)
	}
	return fmt.Sprintf("gpio %s line %q", o.Chip, o.LineName)
}

// openGPIO finds the configured line. injected, when set, stands in for
// the hardware. The line itself is requested by the first write, which
// New makes at once to drive the output off.
func openGPIO(o config.Output, injected gpio.PinIO) (*gpioDriver, error) {
	d := &gpioDriver{activeLow: o.ActiveLow, where: gpioWhere(o)}
	if injected != nil {
		d.pin = injected
		return d, nil
	}
	chip, err := findChip(o.Chip)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.where, err)
	}
	var line *gpioioctl.GPIOLine
	if o.Line != nil {
		if *o.Line >= chip.LineCount() {
			return nil, fmt.Errorf("%s: the chip has lines 0..%d", d.where, chip.LineCount()-1)
		}
		line = chip.ByNumber(*o.Line)
	} else {
		line = chip.ByName(o.LineName)
		if line == nil {
			// gpioioctl prefixes names that several chips share.
			line = chip.ByName(chip.Name() + "-" + o.LineName)
		}
		if line == nil {
			return nil, fmt.Errorf("%s: no line of that name on %s (%s)", d.where, chip.Name(), chip.Label())
		}
	}
	if line == nil {
		return nil, fmt.Errorf("%s: no such line", d.where)
	}
	if c := line.Consumer(); c != "" {
		return nil, fmt.Errorf("%s: line is in use by %q", d.where, c)
	}
	d.pin = line
	return d, nil
}

// findChip matches name against the chips gpioioctl found: the kernel
// name (gpiochip0), the device path (/dev/gpiochip0) or the label
// (pinctrl-bcm2711), so that configs survive chip renumbering if they
// use the label.
func findChip(name string) (*gpioioctl.GPIOChip, error) {
	// driverreg.Init enumerates /dev/gpiochip* once per process and
	// returns the same state to later callers.
	if _, err := driverreg.Init(); err != nil {
		return nil, fmt.Errorf("init gpio drivers: %w", err)
	}
	path := name
	if !strings.HasPrefix(path, "/") {
		path = filepath.Join("/dev", name)
	}
	var found []string
	for _, c := range gpioioctl.Chips {
		if c.Name() == name || c.Path() == path || c.Label() == name {
			return c, nil
		}
		found = append(found, c.Name()+" ("+c.Label()+")")
	}
	// gpioioctl only logs why a chip failed to open; find out ourselves.
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no such chip %s (found: %s)", path, listOrNone(found))
		}
		return nil, fmt.Errorf("open chip: %w", err)
	}
	_ = f.Close()
	return nil, fmt.Errorf("%s exists but is not a usable gpio character device (found: %s)", path, listOrNone(found))
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// OpenLine finds one line of a gpiochip for another part of kioskd (the
// panel's Wiegand lines), with the chip matching and errors of the outputs.
func OpenLine(chip string, line int) (gpio.PinIO, error) {
	d, err := openGPIO(config.Output{Chip: chip, Line: &line}, nil)
	if err != nil {
		return nil, err
	}
	return d.pin, nil
}
