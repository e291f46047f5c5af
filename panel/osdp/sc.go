package osdp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"errors"
)

// scbkD is the install-mode key SCBK-D the OSDP specification fixes.
var scbkD = []byte{0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f}

// sessionKeys are the keys of one secure session, derived from the SCBK and
// the first six bytes of the panel's challenge RND.A.
type sessionKeys struct {
	enc, mac1, mac2 []byte
}

func aesBlock(key, in []byte) []byte {
	c, err := aes.NewCipher(key)
	if err != nil {
		// Keys are always 16 bytes here; anything else is a programming error.
		panic("osdp: " + err.Error())
	}
	out := make([]byte, 16)
	c.Encrypt(out, in)
	return out
}

func deriveKeys(scbk, rndA []byte) sessionKeys {
	derive := func(b1 byte) []byte {
		in := make([]byte, 16)
		in[0], in[1] = 0x01, b1
		copy(in[2:8], rndA[:6])
		return aesBlock(scbk, in)
	}
	return sessionKeys{enc: derive(0x82), mac1: derive(0x01), mac2: derive(0x02)}
}

// clientCryptogram is what the PD proves its key with: S-ENC over RND.A||RND.B.
func clientCryptogram(k sessionKeys, rndA, rndB []byte) []byte {
	return aesBlock(k.enc, append(append([]byte{}, rndA...), rndB...))
}

// serverCryptogram is what the panel proves its key with: S-ENC over RND.B||RND.A.
func serverCryptogram(k sessionKeys, rndA, rndB []byte) []byte {
	return aesBlock(k.enc, append(append([]byte{}, rndB...), rndA...))
}

// initialRMAC starts the MAC chain: S-MAC2 over S-MAC1 over the server
// cryptogram.
func initialRMAC(k sessionKeys, serverCrypt []byte) []byte {
	return aesBlock(k.mac2, aesBlock(k.mac1, serverCrypt))
}

// computeMAC is OSDP's message MAC: AES-CBC from iv over the message padded
// with 0x80 and zeros when not a whole number of blocks, every block but
// the last with S-MAC1 and the last with S-MAC2. The whole last block is the
// next chaining value; the first 4 bytes go on the wire.
func computeMAC(k sessionKeys, iv, msg []byte) []byte {
	buf := append([]byte{}, msg...)
	if len(buf)%16 != 0 {
		buf = append(buf, 0x80)
		for len(buf)%16 != 0 {
			buf = append(buf, 0)
		}
	}
	if len(buf) == 0 {
		buf = make([]byte, 16)
	}
	prev := append([]byte{}, iv...)
	n := len(buf) / 16
	if n > 1 {
		c, _ := aes.NewCipher(k.mac1)
		out := make([]byte, (n-1)*16)
		cipher.NewCBCEncrypter(c, prev).CryptBlocks(out, buf[:(n-1)*16])
		prev = out[len(out)-16:]
	}
	c, _ := aes.NewCipher(k.mac2)
	last := make([]byte, 16)
	cipher.NewCBCEncrypter(c, prev).CryptBlocks(last, buf[(n-1)*16:])
	return last
}

func complement(b []byte) []byte {
	out := make([]byte, len(b))
	for i := range b {
		out[i] = ^b[i]
	}
	return out
}

// encryptData encrypts a message's data with S-ENC in CBC mode, the IV being
// the complement of the last MAC; 0x80 and zeros always pad it.
func encryptData(k sessionKeys, lastMAC, data []byte) []byte {
	buf := append(append([]byte{}, data...), 0x80)
	for len(buf)%16 != 0 {
		buf = append(buf, 0)
	}
	c, _ := aes.NewCipher(k.enc)
	cipher.NewCBCEncrypter(c, complement(lastMAC)).CryptBlocks(buf, buf)
	return buf
}

var errPadding = errors.New("osdp: bad padding in encrypted data")

func decryptData(k sessionKeys, lastMAC, data []byte) ([]byte, error) {
	if len(data) == 0 || len(data)%16 != 0 {
		return nil, errPadding
	}
	buf := append([]byte{}, data...)
	c, _ := aes.NewCipher(k.enc)
	cipher.NewCBCDecrypter(c, complement(lastMAC)).CryptBlocks(buf, buf)
	i := len(buf) - 1
	for i > 0 && buf[i] == 0 {
		i--
	}
	if buf[i] != 0x80 {
		return nil, errPadding
	}
	return buf[:i], nil
}

// session is the secure channel state of the PD.
type session struct {
	keys       sessionKeys
	rndA, rndB []byte
	keyType    byte // 0: SCBK-D, 1: SCBK
	challenged bool
	active     bool
	cmac, rmac []byte // the last command and reply MACs, 16 bytes
}

func macEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
